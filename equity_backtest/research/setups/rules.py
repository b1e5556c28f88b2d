"""A setup and its walk: the setups file's rule (setups(), GATES or qualifies()), the checks
on each study day's rows, and each setup walked forward bar by bar to its exit (gap, stop,
target, horizon or delisting) in prices adjusted to its day's shares."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from ...config import Parameters
from ...data.panel import Panel
from ...engine.strategy_loader import load_module
from ...errors import BadInputError

CORE = ("direction", "stop", "target", "horizon", "entry")
ENTRIES = ("next_open", "close")
SWEEP_CUTOFFS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.0)
TIME_EXITS = (5, 10, 20, 30, 60)
EXITS = ("target", "horizon")  # the setup's own target, or hold to the horizon with the stop


@dataclasses.dataclass
class SetupRule:
    """What a setups file gives: the setup builder and how setups qualify."""

    name: str
    build: object  # callable(view, params) -> DataFrame
    gates: dict[str, float]
    qualifies: object | None = None  # callable(frame, params) -> bool Series

    @classmethod
    def load(cls, path: str | Path) -> SetupRule:
        if not Path(path).is_file():
            raise BadInputError(f"setups file {path} not found; pass --setups PATH")
        module = load_module(path)
        if not hasattr(module, "setups"):
            raise BadInputError(f"{path} has no setups(view, params) function")
        gates = dict(getattr(module, "GATES", {}))
        if not all(isinstance(k, str) and isinstance(v, int | float) for k, v in gates.items()):
            raise BadInputError(f"{path}: GATES must map feature names to minimum values")
        return cls(Path(path).stem, module.setups, gates, getattr(module, "qualifies", None))

    def setups_on(self, view, params: Parameters) -> pd.DataFrame:
        """The file's setups for the view's day, checked; an error in the user's code is
        reported with the day (exit 2), not as a bare traceback."""
        try:
            frame = self.build(view, params)
        except BadInputError:
            raise
        except Exception as exc:
            raise BadInputError(
                f"{self.name}: setups raised {type(exc).__name__} on {view.date:%Y-%m-%d}: {exc}"
            ) from exc
        return _check(frame, view.date, self, view.universe)

    def qualified(self, frame: pd.DataFrame, params: Parameters, without: str | None = None):
        """Which setups are traded (all gates but `without`, or the file's qualifies)."""
        if self.qualifies is not None and without is None:
            mask = pd.Series(self.qualifies(frame, params), index=frame.index)
            return mask.fillna(False).astype(bool).to_numpy()
        mask = np.ones(len(frame), dtype=bool)
        for feature, minimum in self.gates.items():
            if feature != without:
                mask &= frame[feature].to_numpy(dtype=float) >= minimum
        return mask


def _check(frame, day: pd.Timestamp, rule: SetupRule, labels: pd.Index) -> pd.DataFrame:
    where = f"{rule.name}: setups on {day:%Y-%m-%d}"
    if frame is None:
        return pd.DataFrame(columns=["ticker", *CORE])
    if not isinstance(frame, pd.DataFrame):
        raise BadInputError(f"{where} returned {type(frame).__name__}; return a DataFrame")
    missing = {"direction", "stop", "horizon"} - set(frame.columns)
    if missing:
        raise BadInputError(f"{where} lacks column(s) {sorted(missing)}")
    frame = frame.copy()
    if "target" not in frame:
        frame["target"] = np.nan
    if "entry" not in frame:
        frame["entry"] = "next_open"
    bad_entry = ~frame["entry"].isin(ENTRIES)
    if bad_entry.any():
        raise BadInputError(
            f"{where}: entry {frame['entry'][bad_entry].iloc[0]!r} for "
            f"{frame.index[bad_entry][0]!r}; use one of {ENTRIES}"
        )
    if not frame["direction"].isin([1, -1]).all():
        raise BadInputError(f"{where}: direction must be +1 (long) or -1 (short)")
    horizon = pd.to_numeric(frame["horizon"], errors="coerce")
    if not ((horizon >= 1) & (horizon == horizon.round())).all():
        raise BadInputError(f"{where}: horizon must be a whole number of bars >= 1")
    unknown = frame.index[labels.get_indexer(frame.index) < 0]
    if len(unknown):
        raise BadInputError(
            f"{where}: ticker {unknown[0]!r} is not an index member that day; build setups "
            "for view.universe"
        )
    for gate in rule.gates:
        if gate not in frame:
            raise BadInputError(f"{where} has no column {gate!r} that GATES filters on")
    frame["horizon"] = horizon.astype(int)
    frame.index.name = "ticker"
    return frame.reset_index()


@dataclasses.dataclass(frozen=True)
class Tape:
    """What every walk over one panel reads, derived once: the cumulative split ratios (price(s)
    x factors[s] / factors[t] is price(s) in the shares of day t; a 2:1 split doubles the factor)
    and each ticker's delisting (day, value)."""

    factors: np.ndarray
    delistings: dict[int, tuple[int, float]]

    @classmethod
    def of(cls, panel: Panel) -> Tape:
        ratio = np.ones((len(panel.dates), len(panel.tickers)))
        for t, (idx, r) in panel.events.splits.items():
            ratio[t, idx] *= r
        delistings = {
            int(i): (day, float(v))
            for day, (idx, value) in panel.events.delistings.items()
            for i, v in zip(idx, value, strict=True)
        }
        return cls(np.cumprod(ratio, axis=0), delistings)


def walk(
    panel: Panel,
    t: int,
    setups: pd.DataFrame,
    tape: Tape,
    exit_rule: str = "target",
    hold: int | None = None,
) -> pd.DataFrame:
    """Outcomes of one day's setups: exit day, exit price, how it ended, bars held, R.

    exit_rule "target" uses each setup's target; "horizon" ignores it (stop or time exit);
    hold replaces the horizon (the time-exit sweep)."""
    T = len(panel.dates)
    codes = panel.labels.get_indexer(setups["ticker"])
    direction = setups["direction"].to_numpy(dtype=float)
    stop = setups["stop"].to_numpy(dtype=float)
    target = setups["target"].to_numpy(dtype=float) if exit_rule == "target" else None
    horizon = np.full(len(setups), hold) if hold else setups["horizon"].to_numpy(dtype=int)
    at_open = (setups["entry"] == "next_open").to_numpy()
    f, factors, delist = panel.fields, tape.factors, tape.delistings
    rows = []
    for k, i in enumerate(codes):
        d, s = direction[k], stop[k]
        tgt = np.nan if target is None else target[k]
        first = t + 1
        if at_open[k]:
            if first >= T or not np.isfinite(f["open"][first, i]):
                rows.append(_row("no_entry"))
                continue
            entry = f["open"][first, i] * factors[first, i] / factors[t, i]
        else:
            entry = panel.mark[t, i]
        risk = d * (entry - s)
        if not np.isfinite(entry):
            rows.append(_row("no_entry"))
            continue
        if not risk > 0:
            # a stop on the wrong side of the close is the setup's error ("invalid"); an open
            # beyond the stop voids the setup before it is entered ("void")
            rows.append(_row("void" if at_open[k] else "invalid", entry=entry))
            continue
        last = min(t + int(horizon[k]), T - 1)
        if t + int(horizon[k]) > T - 1:
            rows.append(_row("open", entry=entry, risk=risk))
            continue
        outcome = None
        for b in range(first, last + 1):
            if i in delist and delist[i][0] == b:
                outcome = ("delisted", b, delist[i][1] * factors[b, i] / factors[t, i])
                break
            scale = factors[b, i] / factors[t, i]
            o, h, lo, c = (f[x][b, i] * scale for x in ("open", "high", "low", "close"))
            if not np.isfinite(c):
                continue  # no trade that day
            gap_check = not (at_open[k] and b == first)  # the entry bar's open is the entry
            worst, best = (lo, h) if d > 0 else (h, lo)
            stop_hit = d * (worst - s) <= 0
            target_hit = np.isfinite(tgt) and d * (best - tgt) >= 0
            if gap_check and np.isfinite(o) and d * (o - s) <= 0:
                outcome = ("stop_gap", b, o)
            elif gap_check and np.isfinite(o) and np.isfinite(tgt) and d * (o - tgt) >= 0:
                outcome = ("target_gap", b, o)
            elif stop_hit and target_hit:
                outcome = ("both_loss", b, s)
            elif stop_hit:
                outcome = ("stop", b, s)
            elif target_hit:
                outcome = ("target", b, tgt)
            if outcome:
                break
        if outcome is None:
            closes = panel.mark[first : last + 1, i] * factors[first : last + 1, i] / factors[t, i]
            finite = np.flatnonzero(np.isfinite(closes))
            if not len(finite):
                rows.append(_row("no_entry", entry=entry, risk=risk))
                continue
            outcome = ("time", first + int(finite[-1]), float(closes[finite[-1]]))
        how, b, price = outcome
        r = d * (price - entry) / risk
        rows.append(_row(how, entry, risk, b, price, b - t, r))
    out = pd.DataFrame(rows)
    out.insert(0, "ticker", setups["ticker"].to_numpy())
    out.insert(0, "date", panel.dates[t])
    out["direction"] = direction.astype(int)
    return out


def _row(how, entry=np.nan, risk=np.nan, exit_t=-1, exit_price=np.nan, bars=0, r=np.nan):
    return {
        "outcome": how, "entry_price": float(entry), "risk": float(risk), "exit_t": int(exit_t),
        "exit_price": float(exit_price), "bars_held": int(bars), "r": float(r),
    }  # fmt: skip
