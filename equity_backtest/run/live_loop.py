"""The live account's long-running loop (E12): `03_trade.py --live --loop`, a heartbeat after
each session's close instead of a cron line.

`live_heartbeat = "1d"`: the loop sleeps until the close of the exchange's next session
(exchange_calendars, `exchange_calendar`) plus `live_delay_minutes`, then does what the cron
line does: 01 (the vendor; on the simulated market, its clock set to that session), 02, and the
account's new bars (run.live.step). `"<N>min"` adds a heartbeat every N minutes of each
session: the orders decided at the last close fill at the first one, at the vendor's latest
prices (run.live.intraday), and the close's heartbeat books them in the bar. A vendor that does not answer, or a broker the account waits
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


def minutes(heartbeat: str) -> int | None:
    """'1d' -> None (after the close only); '<N>min' -> N (also every N minutes in a session)."""
    if heartbeat == "1d":
        return None
    number = heartbeat.removesuffix("min")
    if heartbeat.endswith("min") and number.isdigit() and int(number) > 0:
        return int(number)
    raise BadInputError(
        f"live_heartbeat = {heartbeat!r}: '1d' (after each close) or '<N>min' (every N minutes "
        "of the session too, e.g. '10min')"
    )


class SystemClock:
    """The wall clock; the tests pass one that jumps instead of sleeping."""

    def now(self) -> pd.Timestamp:
        return pd.Timestamp.now(tz="UTC")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def next_beat(params: Parameters, now: pd.Timestamp) -> tuple[dt.date, pd.Timestamp, str]:
    """The next heartbeat after `now`: (session, moment, "intraday" or "close"). Intraday ones
    come every N minutes from the open (not at it) to before the close; the close's comes
    live_delay_minutes after it."""
    delay = pd.Timedelta(minutes=params.live_delay_minutes)
    every = minutes(params.live_heartbeat)
    start = (now - pd.Timedelta(days=7)).date()
    for years in (1, 2, 5):
        table = calendars.schedule(params.exchange_calendar, start,
                                   start.replace(year=start.year + years))  # fmt: skip
        for session, (open_, close) in table.iterrows():
            beats = []
            if every:
                step = pd.Timedelta(minutes=every)
                moment = open_ + step
                while moment < close:
                    beats.append((moment, "intraday"))
                    moment += step
            beats.append((close + delay, "close"))
            for moment, kind in beats:
                if moment > now:
                    return session.date(), moment, kind
    raise BadInputError(f"{params.exchange_calendar} has no session in the next five years")


def loop(
    params: Parameters,
    *,
    clock=None,
    beats: int | None = None,
    accept_change: bool = False,
    on_beat: Callable[[dt.date, live.LiveOutcome | None], None] | None = None,
) -> int:
    """Beat until stopped (or `beats` closes' heartbeats); returns how many of those ran."""
    minutes(params.live_heartbeat)  # (a bad one is said before the first sleep)
    clock = clock or SystemClock()
    done = 0
    while beats is None or done < beats:
        session, when, kind = next_beat(params, clock.now())
        log.info("live: next heartbeat %s (%s of %s)", when, kind, session)
        while (wait := (when - clock.now()).total_seconds()) > 0:
            clock.sleep(min(wait, 60.0))
        if kind == "intraday":
            live.intraday(params, when)
            continue  # (only the close's heartbeats count)
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
