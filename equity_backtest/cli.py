"""What every numbered script shares: arguments, logging, exit codes (O1).

Exit codes: 0 ok, 1 internal error (a bug: the traceback goes to the log), 2 bad input (the
message names the file, row or field), 3 vendor unavailable, 4 lock held, 5 the portfolio's
equity ran out, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from dotenv import load_dotenv

from .config import Parameters, load_parameters, parse_assignments
from .errors import EXIT_INTERNAL, BacktestError
from .infra import remote
from .infra.locks import process_alive, stage_lock  # noqa: F401  (the scripts use cli.stage_lock)

log = logging.getLogger("equity_backtest")


def parser(
    description: str, *, window: bool = True, prog: str | None = None
) -> argparse.ArgumentParser:
    """An argument parser with the flags every script takes. `prog`: how a module is run
    (`python -m equity_backtest.research`), so usage lines show a command that works."""
    p = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--parameters",
        default="parameters.py",
        metavar="PATH",
        help="the parameters file (default: parameters.py)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override any parameter, e.g. --set rebalance=quarterly (repeatable)",
    )
    if window:
        p.add_argument(
            "--start", help="first day of the backtest, YYYY-MM-DD (overrides parameters.py)"
        )
        p.add_argument("--end", help="last day of the backtest, YYYY-MM-DD (inclusive)")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="print only errors (and what the script hands on, such as a path); warnings still go "
        "to the log file; no progress bars",
    )
    p.add_argument("--verbose", action="store_true", help="print debug messages")
    return p


def load(args: argparse.Namespace, **extra) -> Parameters:
    """parameters.py + --set + the named flags (flags win)."""
    overrides = parse_assignments(args.set)
    for name in ("start", "end"):
        if getattr(args, name, None):
            overrides[name] = getattr(args, name)
    overrides.update({k: v for k, v in extra.items() if v is not None})
    return load_parameters(args.parameters, overrides)


def setup_logging(args: argparse.Namespace, log_file: Path | None = None) -> None:
    """Console logging (quiet/verbose aware) and, if given, a full log file for the run."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(logging.DEBUG)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(
        logging.ERROR if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    )
    # Python warnings from libraries (matplotlib, pandas) as log records: quiet hides them on the
    # console like any other warning, and the log file keeps them
    logging.captureWarnings(True)
    console.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root.addHandler(console)
    if log_file is not None:
        add_log_file(log_file)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)


def add_log_file(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def stage_log_file(stage: str) -> Path:
    """logs/<stage>_<UTC start time>.log for scripts whose outputs have no run folder."""
    return Path("logs") / f"{stage}_{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%fZ}.log"


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars only for a person at a terminal."""
    return not args.quiet and sys.stderr.isatty()


def run(main: Callable[[], int | None]) -> None:
    """Call a script's main and turn the outcome into an exit code; never a bare traceback for
    a user's mistake. Credentials may sit in a git-ignored .env file beside parameters.py;
    variables already set in the environment win."""
    load_dotenv(Path.cwd() / ".env", override=False)
    try:
        code = main() or 0
    except BacktestError as exc:
        log.error("%s", exc)
        code = exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        code = 130
    except Exception:
        log.exception("internal error: please report it with the log file")
        code = EXIT_INTERNAL
    logging.shutdown()
    sys.exit(code)


@contextlib.contextmanager
def trading_stores(params: Parameters) -> Iterator[Parameters]:
    """03's stores as local folders: the dataset version it reads (pulled when datasets_dir is a
    URL) and the results folder it writes (pushed back when results_dir is one)."""
    cache = params.store_cache_dir
    with (
        remote.mirrored(
            params.datasets_dir,
            cache,
            pull=remote.dataset_version(params.dataset_version),
            push=False,
        ) as datasets_dir,
        remote.mirrored(params.results_dir, cache, pull=None) as results_dir,
    ):
        yield params.replace(datasets_dir=str(datasets_dir), results_dir=str(results_dir))
