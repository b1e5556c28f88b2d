"""The live account's long-running loop (E12): `03_trade.py --live --loop`, a heartbeat after
each session's close instead of a cron line.

`live_heartbeat = "1d"`: the loop sleeps until the close of the exchange's next session
(exchange_calendars, `exchange_calendar`) plus `live_delay_minutes`, then does what the cron
line does: 01 (the vendor; on the simulated market, its clock set to that session), 02, and the
account's new bars (run.live.step). A vendor that does not answer, or a broker the account waits
for, is said and tried again at the next heartbeat; anything else (a changed algorithm, a
damaged journal) stops the loop with its message. Ctrl-C stops it between two steps of a bar's
work: the account is consistent after each of them (docs/live.md, Recovery).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

import pandas as pd

from .. import cli
from ..config import Parameters
from ..data import calendars, datasets, vendors
from ..errors import BadInputError, VendorUnavailableError, WaitingError
from . import live

log = logging.getLogger(__name__)

HEARTBEATS = ("1d",)


class SystemClock:
    """The wall clock; the tests pass one that jumps instead of sleeping."""

    def now(self) -> pd.Timestamp:
        return pd.Timestamp.now(tz="UTC")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def next_beat(params: Parameters, now: pd.Timestamp) -> tuple[dt.date, pd.Timestamp]:
    """The next session whose close plus the delay is after `now`: (session, that moment)."""
    delay = pd.Timedelta(minutes=params.live_delay_minutes)
    start = (now - pd.Timedelta(days=7)).date()
    for years in (1, 2, 5):
        closes = calendars.closes(
            params.exchange_calendar, start, start.replace(year=start.year + years)
        )
        due = closes[closes + delay > now]
        if len(due):
            return due.index[0].date(), due.iloc[0] + delay
    raise BadInputError(f"{params.exchange_calendar} has no session in the next five years")


def loop(
    params: Parameters,
    *,
    clock=None,
    beats: int | None = None,
    accept_change: bool = False,
    on_beat: Callable[[dt.date, live.LiveOutcome | None], None] | None = None,
) -> int:
    """Beat until stopped (or `beats` times); returns how many beats ran."""
    if params.live_heartbeat not in HEARTBEATS:
        raise BadInputError(
            f"live_heartbeat = {params.live_heartbeat!r}: only '1d' (after each close) is "
            "built; an intraday heartbeat is not (docs/live.md)"
        )
    clock = clock or SystemClock()
    done = 0
    while beats is None or done < beats:
        session, when = next_beat(params, clock.now())
        log.info("live: next heartbeat %s, after the close of %s", when, session)
        while (wait := (when - clock.now()).total_seconds()) > 0:
            clock.sleep(min(wait, 60.0))
        outcome = beat(params, session, accept_change)
        if on_beat is not None:
            on_beat(session, outcome)
        done += 1
        accept_change = False  # (a change is accepted once)
    return done


def beat(params: Parameters, session: dt.date, accept_change: bool) -> live.LiveOutcome | None:
    """01, 02 and the account's new bars after the close of `session`; None when the vendor did
    not answer or the account waits (said, and tried again at the next heartbeat)."""
    today = params.replace(sim_clock=session) if params.source == "simulated" else params
    try:
        with cli.stage_lock(today.datalog_dir, "01_query_vendor"):
            vendors.query(today)
        with cli.stage_lock(today.datasets_dir, "02_build_datasets"):
            datasets.build(today.datalog_dir, today.datasets_dir, calendar=today.exchange_calendar)
        outcome = live.step(today, accept_change=accept_change)
    except (VendorUnavailableError, WaitingError) as exc:
        log.warning("live heartbeat after %s: %s (tried again at the next one)", session, exc)
        return None
    log.info("live heartbeat after %s: %d new bar(s), value %.2f", session, len(outcome.days),
             outcome.value)  # fmt: skip
    return outcome
