"""Exception types that map a failure to the exit code a cron job or a user can act on."""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_VENDOR_UNAVAILABLE = 3
EXIT_LOCKED = 4
EXIT_PORTFOLIO_BANKRUPT = 5
SHOWN = 10  # offenders a message names before it counts the rest


def some(items, shown: int = SHOWN) -> str:
    """The first `shown` items for a message, and how many more: a message about 98,000 unknown
    tickers stays one line long."""
    items = list(items)
    head = ", ".join(repr(i) for i in items[:shown])
    return head + (f" and {len(items) - shown:,} more" if len(items) > shown else "")


class BacktestError(Exception):
    """A failure the user can fix; the message says what and where. Never shown as a traceback."""

    exit_code = EXIT_BAD_INPUT


class BadInputError(BacktestError):
    """Malformed parameters, logfiles, weights or files: names the file, row or field."""

    exit_code = EXIT_BAD_INPUT


class WaitingError(BadInputError):
    """A live account waits for something outside it (a broker's fill report, orders still
    open): nothing of the next bar is done; the next run goes on once it is there."""


class VendorUnavailableError(BacktestError):
    """The data vendor (e.g. a Bloomberg terminal) cannot be reached."""

    exit_code = EXIT_VENDOR_UNAVAILABLE


class LockHeldError(BacktestError):
    """Another run of the same stage holds the lock on this store."""

    exit_code = EXIT_LOCKED
