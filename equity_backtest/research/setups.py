"""Setup studies: trading setups (entry, stop, target, time exit) graded in R against a control group.

    python -m equity_backtest.research.setups --setups examples/setup_momentum_atr.py [--every 5]

A setups file defines `setups(view, params)`: on a study day, from the point-in-time view only,
one row per ticker (index: ticker) with
  direction  +1 long or -1 short;
  stop       the protective stop price (below the entry for a long, above for a short);
  target     the take-profit price, or NaN for none;
  horizon    bars to hold at most (a time exit at that bar's close);
  entry      "next_open" (default: the engine's clock, an order filled at the next open) or
             "close" (this close);
and any further numeric columns: features to filter on (scores, percentiles). A setup whose stop
is on the wrong side of its close is "invalid"; one whose next open is already beyond its stop is
"void" (never entered); one whose horizon runs past the data is "open"; none of them is graded. Which setups are
traded: `GATES = {"feature": minimum, ...}` in the file (every gate met; each can be removed in
turn for the ablation), or a `qualifies(frame, params)` returning a bool Series. All setups are
the control group.

Each setup is walked forward on the panel in prices adjusted to its day's shares (a split inside
the walk does not read as a crash): in each bar, a gap through the stop (or the target) exits at
the open, so a loss can exceed 1R; a bar that reaches both the stop and the target counts as the
loss (the order of the two inside a bar is unknown); otherwise the stop, then the target; at the
horizon, the close. A delisting exits at its value. R = direction x (exit - entry) / |entry -
stop|. Net R subtracts the engine's costs per share in and out, in R:
    cost_R = (entry + exit) x (spread_bps / 2 + slippage_bps) / 1e4 + (entry + exit) x
             commission_rate + 2 x commission_per_share, divided by |entry - stop|
(commission_min and the impact term depend on an order's size, which a setup study has not).
Dividends are not in R (price moves only).

Reported, for the qualified setups and for all setups: count, hit rate, expectancy in R gross and
net, median, profit factor, expectancy without the top 5% of winners, by direction; a threshold
sweep of one feature; the gate ablation under the target exit and the hold-to-horizon exit; a
time-exit sweep (hold N bars with the initial stop); rank ICs of the features with R on
non-overlapping windows; and findings drawn from those numbers. Writes setups_report.json,
setups_report.html and outcomes.csv.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .. import cli
from ..config import Parameters
from ..data.panel import Panel, load_panel
from ..engine.clock import heartbeat_range
from ..engine.strategy_loader import load_module
from ..engine.view import View
from ..errors import BadInputError
from ..evaluation import page as report_page
from ..infra.storage import atomic_write_bytes, atomic_write_text
from .factors import _spearman, _t

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


def cost_in_r(outcomes: pd.DataFrame, params: Parameters) -> np.ndarray:
    """The engine's per-share costs in and out, in R (see the module docstring's formula)."""
    frac = (params.spread_bps / 2 + params.slippage_bps) / 1e4 + params.commission_rate
    turnover = outcomes["entry_price"] + outcomes["exit_price"]
    cost = turnover * frac + 2 * params.commission_per_share
    return (cost / outcomes["risk"]).to_numpy()


def grade(r: np.ndarray) -> dict:
    """Count, hit rate, expectancy, median, profit factor, and expectancy without the top 5% of
    winners (does the edge live in a few outliers?)."""
    r = np.asarray(r, dtype=float)
    r = r[np.isfinite(r)]
    n = len(r)
    if n == 0:
        return {"count": 0}
    wins, losses = r[r > 0], r[r <= 0]
    top = int(math.ceil(0.05 * len(wins)))
    trimmed = np.sort(r)[: n - top] if top else r
    return {
        "count": n,
        "hit_rate": float(len(wins) / n),
        "expectancy_r": float(r.mean()),
        "median_r": float(np.median(r)),
        "profit_factor": float(wins.sum() / -losses.sum()) if losses.sum() < 0 else None,
        "expectancy_without_top5pct_r": float(trimmed.mean()) if len(trimmed) else None,
        "t_stat": _t(r),
    }


def _graded(outcomes: pd.DataFrame, mask: np.ndarray) -> dict:
    sel = outcomes[mask]
    out = {"gross": grade(sel["r"]), "net": grade(sel["r_net"])}
    for d, name in ((1, "long"), (-1, "short")):
        part = sel[sel["direction"] == d]
        if len(part):
            out[name] = {"gross": grade(part["r"]), "net": grade(part["r_net"])}
    return out


@dataclasses.dataclass
class Study:
    rule: SetupRule
    setups: pd.DataFrame  # every setup with its features and the day index t
    outcomes: dict[str, pd.DataFrame]  # by exit rule, aligned with setups
    tape: Tape  # the panel's split factors and delistings, for further walks


def collect(panel: Panel, params: Parameters, rule: SetupRule, every: int) -> pd.DataFrame:
    """Every study day's setups (one call of setups() per day, from that day's view only)."""
    t0, t1 = heartbeat_range(panel.dates, params.start, params.end)
    parts = []
    for t in range(t0, t1 + 1, every):
        view = View(panel, t, np.zeros(len(panel.tickers)), 0.0, params.lookback_days)
        frame = rule.setups_on(view, params)
        if len(frame):
            parts.append(frame.assign(t=t))
    if not parts:
        raise BadInputError(f"{rule.name}: setups() returned no setups between {params.start} "
                            f"and {params.end}")  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def outcomes_for(
    panel, params, setups, exit_rule="target", hold=None, tape: Tape | None = None
) -> pd.DataFrame:
    tape = tape or Tape.of(panel)
    parts = [
        walk(panel, int(t), group, tape, exit_rule, hold)
        for t, group in setups.groupby("t", sort=True)
    ]
    out = pd.concat(parts, ignore_index=True)
    out["r_net"] = out["r"] - cost_in_r(out, params)
    return out


def run_study(panel: Panel, params: Parameters, rule: SetupRule, every: int = 5) -> Study:
    setups = collect(panel, params, rule, every)
    setups = setups.sort_values(["t", "ticker"], kind="stable").reset_index(drop=True)
    tape = Tape.of(panel)
    outcomes = {e: outcomes_for(panel, params, setups, e, tape=tape) for e in EXITS}
    return Study(rule, setups, outcomes, tape)


def features(setups: pd.DataFrame) -> list[str]:
    return [
        c for c in setups.columns
        if c not in (*CORE, "ticker", "t") and pd.api.types.is_numeric_dtype(setups[c])
    ]  # fmt: skip


def summarise(study: Study, panel: Panel, params: Parameters, sweep_feature: str | None) -> dict:
    """Every table of the report, as plain numbers."""
    setups, rule = study.setups, study.rule
    qualified = rule.qualified(setups, params)
    target = study.outcomes["target"]
    report = {
        "setups_file": rule.name,
        "gates": rule.gates,
        "study_days": int(setups["t"].nunique()),
        "setups": int(len(setups)),
        "qualified": int(qualified.sum()),
        "outcome_counts": target["outcome"].value_counts().to_dict(),
        "exits": {
            e: {"qualified": _graded(o, qualified), "control": _graded(o, np.ones(len(o), bool))}
            for e, o in study.outcomes.items()
        },
    }
    feats = features(setups)
    sweep_feature = sweep_feature or (next(iter(rule.gates)) if rule.gates else None)
    if sweep_feature:
        if sweep_feature not in setups:
            raise BadInputError(f"--sweep-feature {sweep_feature!r} is not a setups column")
        others = rule.qualified(setups, params, without=sweep_feature)
        values = setups[sweep_feature].to_numpy(dtype=float)
        report["threshold_sweep"] = {
            "feature": sweep_feature,
            "rows": [
                {
                    "cutoff": c,
                    **{e: _graded(o, others & (values >= c))["net"] for e, o in study.outcomes.items()},
                }
                for c in SWEEP_CUTOFFS
            ],
        }  # fmt: skip
    if rule.gates:
        report["ablation"] = [
            {
                "without": g,
                **{
                    e: _graded(o, rule.qualified(setups, params, without=g))["net"]
                    for e, o in study.outcomes.items()
                },
            }
            for g in rule.gates
        ]
    report["time_exits"] = [
        {"hold_bars": n, **_graded(outcomes_for(panel, params, setups[qualified], "horizon", n, study.tape),
                                   np.ones(int(qualified.sum()), bool))["net"]}
        for n in TIME_EXITS
    ] if qualified.any() else []  # fmt: skip
    report["feature_ics"] = _feature_ics(setups, study.outcomes["horizon"], feats)
    report["findings"] = findings(report)
    return report


def _feature_ics(setups: pd.DataFrame, outcomes: pd.DataFrame, feats: list[str]) -> list[dict]:
    """Rank IC of each feature with the hold-to-horizon R, per study day, on days spaced at least
    the longest horizon apart (windows that never overlap)."""
    gap = int(setups["horizon"].max())
    days, last = [], -(10**9)
    for t in sorted(setups["t"].unique()):
        if t - last >= gap:
            days.append(t)
            last = t
    out = []
    for feat in feats:
        ics = []
        for t in days:
            rows = (setups["t"] == t).to_numpy()
            x = setups.loc[rows, feat].to_numpy(dtype=float)
            y = outcomes.loc[rows, "r"].to_numpy(dtype=float)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() >= 5:
                ics.append(_spearman(x[ok], y[ok]))
        ics = np.array([v for v in ics if np.isfinite(v)])
        out.append({
            "feature": feat, "windows": len(ics),
            "mean_ic": float(ics.mean()) if len(ics) else None,
            "t_stat": _t(ics) if len(ics) > 1 else None,
        })  # fmt: skip
    return out


def findings(report: dict) -> list[str]:
    """Plain statements drawn from the numbers: each flips when the numbers flip."""
    out = []
    ex = report["exits"]
    q = {e: ex[e]["qualified"]["net"] for e in EXITS}
    c = {e: ex[e]["control"]["net"] for e in EXITS}
    if not q["target"].get("count"):
        return ["No setup qualified: nothing to grade."]
    best = max(EXITS, key=lambda e: q[e].get("expectancy_r", -np.inf))
    other = next(e for e in EXITS if e != best)
    out.append(
        f"Use the {'setup target' if best == 'target' else 'hold-to-horizon'} exit: "
        f"{q[best]['expectancy_r']:+.3f}R net per qualified setup against "
        f"{q[other]['expectancy_r']:+.3f}R with the {other} exit."
    )
    diff = q[best]["expectancy_r"] - c[best]["expectancy_r"]
    t = q[best].get("t_stat")
    verdict = "beat" if diff > 0 else "did not beat"
    out.append(
        f"Qualified setups {verdict} the control group by {diff:+.3f}R net "
        f"({q[best]['count']} vs {c[best]['count']} setups; the qualified mean's t-stat "
        f"{t if t is None else round(t, 2)})."
    )
    trimmed = q[best].get("expectancy_without_top5pct_r")
    if trimmed is not None:
        out.append(
            "The edge survives without the top 5% of winners "
            f"({trimmed:+.3f}R)." if trimmed > 0 else
            f"Without the top 5% of winners the expectancy is {trimmed:+.3f}R: the result rests on "
            "a few outliers."
        )  # fmt: skip
    book = report.get("book")
    if (
        book
        and book.get("annual_return") is not None
        and book.get("index_annual_return") is not None
    ):
        ahead = book["annual_return"] > book["index_annual_return"]
        out.append(
            f"The capital-constrained book ({book['positions']} positions) returned "
            f"{book['annual_return']:.2%} a year, {'ahead of' if ahead else 'behind'} the index's "
            f"{book['index_annual_return']:.2%} (Sharpe {book['sharpe_ratio']:.2f} against "
            f"{book['index_sharpe_ratio']:.2f})."
        )
    for row in report.get("ablation", []):
        without = row[best].get("expectancy_r")
        if without is None:
            continue
        keeps = without < q[best]["expectancy_r"]
        out.append(
            f"Gate {row['without']!r} {'earns its keep' if keeps else 'does not earn its keep'}: "
            f"without it {without:+.3f}R net against {q[best]['expectancy_r']:+.3f}R with it."
        )
    return out


class Book:
    """The qualified setups as one portfolio, for the engine: compute_weights called every bar.

    Each bar, positions still held keep their weight, stop, target and time exit; free slots (at
    most `positions` open, one per ticker) go to today's qualified setups, best `rank_by` first,
    each sized to lose `risk_per_trade` of equity at its stop (weight = risk_per_trade x close /
    |close - stop|), capped at `max_weight`, while the weights sum to at most 1 - cash_buffer.
    The engine then fills them at its next fill with its costs and volume cap, and exits them at
    the stop, at the target (take-profit) or after `horizon` bars (time exit). Short setups need
    allow_short. The book counts bars itself, so its runs write no checkpoint."""

    def __init__(self, setups_file: str | Path, positions: int = 10,
                 risk_per_trade: float = 0.01, max_weight: float = 0.2,
                 rank_by: str | None = None):  # fmt: skip
        self.check(positions, risk_per_trade, max_weight)
        self.rule = SetupRule.load(setups_file)
        self.positions, self.risk, self.cap = positions, risk_per_trade, max_weight
        self.rank_by = rank_by or (next(iter(self.rule.gates)) if self.rule.gates else None)
        self.bar = -1
        self.open: dict[str, dict] = {}  # ticker -> stop, target, exit bar

    @staticmethod
    def check(positions: int, risk_per_trade: float, max_weight: float) -> None:
        if not (positions >= 1 and 0 < risk_per_trade <= 1 and 0 < max_weight <= 1):
            raise BadInputError(
                f"the book needs --book >= 1 (got {positions}), --risk-per-trade in (0, 1] (got "
                f"{risk_per_trade:g}) and --max-weight in (0, 1] (got {max_weight:g})"
            )

    def weights(self, view, params) -> pd.DataFrame:
        self.bar += 1
        held = view.weights
        self.open = {t: e for t, e in self.open.items() if t in held.index}
        rows = {
            t: {"weight": float(held[t]), "stop": e["stop"], "target": e["target"],
                "exit_after": max(1, e["exit_bar"] - self.bar)}  # a partial fill: again
            for t, e in self.open.items()
        }  # fmt: skip
        frame = self.rule.setups_on(view, params)
        if len(frame):
            frame = frame[self.rule.qualified(frame, params)]
            if not params.allow_short:
                frame = frame[frame["direction"] > 0]
            if self.rank_by and self.rank_by in frame:
                frame = frame.sort_values(self.rank_by, ascending=False, kind="stable")
            close = view.market(view.universe)["close"]
            budget = 1.0 - params.cash_buffer - float(np.abs(held).sum())
            for setup in frame.itertuples(index=False):
                if len(rows) >= self.positions:
                    break
                if setup.ticker in rows or setup.ticker not in close.index:
                    continue
                price = float(close[setup.ticker])
                risk = setup.direction * (price - setup.stop)
                if not (np.isfinite(price) and risk > 0):
                    continue
                weight = min(self.risk * price / risk, self.cap)
                if weight > budget:
                    break
                budget -= weight
                self.open[setup.ticker] = {
                    "stop": float(setup.stop), "target": float(setup.target),
                    "exit_bar": self.bar + 1 + int(setup.horizon),  # held `horizon` bars
                }  # fmt: skip
                rows[setup.ticker] = {
                    "weight": setup.direction * weight, "stop": float(setup.stop),
                    "target": float(setup.target), "exit_after": int(setup.horizon) + 1,
                }  # fmt: skip
        if not rows:
            return pd.DataFrame(columns=["weight", "stop", "target", "exit_after"])
        return pd.DataFrame.from_dict(rows, orient="index")


BOOK_ALGORITHM = """\"\"\"The book of {name}'s qualified setups (written by python -m equity_backtest.research.setups
--book): at most {positions} positions, {risk:g} of equity at risk per trade, {cap:g} at most per
position, ranked by {rank}.\"\"\"

from equity_backtest.research.setups import Book

BOOK = Book({path!r}, positions={positions}, risk_per_trade={risk!r}, max_weight={cap!r},
            rank_by={rank!r})


def compute_weights(view, params):
    return BOOK.weights(view, params)
"""


def run_book(params: Parameters, setups_file: str | Path, out: Path, positions: int,
             risk: float, cap: float, rank_by: str | None):  # fmt: skip
    """Replay the qualified setups through the engine (03 and 04 as for any algorithm): the
    run's archive and tear sheet, and its result against the index."""
    from .. import api

    book = Book(setups_file, positions, risk, cap, rank_by)  # checks the settings first
    out.mkdir(parents=True, exist_ok=True)
    algorithm = out / "book_algorithm.py"
    atomic_write_text(
        algorithm,
        BOOK_ALGORITHM.format(
            name=book.rule.name, path=str(Path(setups_file).resolve()), positions=positions,
            risk=risk, cap=cap, rank=book.rank_by,
        ),
    )  # fmt: skip
    run = api.backtest(params.replace(algorithm=str(algorithm), rebalance="daily",
                                      checkpoint_days=0))  # fmt: skip
    metrics = run.metrics
    mine, index = metrics["portfolio"], metrics.get("benchmark") or {}
    return {
        "run_folder": str(run.folder),
        "positions": positions, "risk_per_trade": risk, "max_weight": cap, "rank_by": book.rank_by,
        "annual_return": mine.get("annual_return"), "sharpe_ratio": mine.get("sharpe_ratio"),
        "max_drawdown": mine.get("max_drawdown"),
        "index_annual_return": index.get("annual_return"),
        "index_sharpe_ratio": index.get("sharpe_ratio"),
        "exits": run.trades["reason"].value_counts().to_dict(),
    }  # fmt: skip


def report_files(report: dict, outcomes: pd.DataFrame, out: Path) -> Path:
    """setups_report.json, outcomes.csv and setups_report.html in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    clean = json.loads(json.dumps(report, default=_plain), parse_constant=lambda c: None)
    atomic_write_text(out / "setups_report.json", json.dumps(clean, indent=1) + "\n")
    atomic_write_text(out / "outcomes.csv", outcomes.to_csv(index=False, float_format="%.10g"))
    atomic_write_bytes(out / "setups_report.html", _html(clean).encode("utf-8"))
    return out / "setups_report.html"


def _plain(v):
    if isinstance(v, np.integer | np.floating):
        return v.item()
    return str(v)


def _fmt(v, pct=False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, int):
        return str(v)
    return f"{v:.1%}" if pct else f"{v:+.3f}" if isinstance(v, float) else html.escape(str(v))


def _grade_cells(g: dict) -> str:
    keys = ("count", "hit_rate", "expectancy_r", "median_r", "profit_factor",
            "expectancy_without_top5pct_r")  # fmt: skip
    return "".join(f"<td>{_fmt(g.get(k), k == 'hit_rate')}</td>" for k in keys)


def _html(report: dict) -> str:
    head = ("<th>count</th><th>hit rate</th><th>expectancy R</th><th>median R</th>"
            "<th>profit factor</th><th>without top 5%</th>")  # fmt: skip
    rows = []
    for e, groups in report["exits"].items():
        for group, g in groups.items():
            for basis in ("gross", "net"):
                rows.append(
                    f"<tr><td>{e}</td><td>{group}</td><td>{basis}</td>{_grade_cells(g[basis])}</tr>"
                )
    parts = [
        f"<h1>Setup study: {html.escape(report['setups_file'])}</h1>",
        f"<p class='meta'>{report['setups']} setups on {report['study_days']} days, "
        f"{report['qualified']} qualified (gates {html.escape(json.dumps(report['gates']))}); "
        f"outcomes {html.escape(json.dumps(report['outcome_counts']))}</p>",
        "<h2>Findings</h2><ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in report["findings"]) + "</ul>",
        f"<h2>Qualified and control</h2><table><tr><th>exit</th><th>group</th><th>R</th>{head}</tr>{''.join(rows)}</table>",
    ]  # fmt: skip
    if "threshold_sweep" in report:
        sw = report["threshold_sweep"]
        body = "".join(
            f"<tr><td>{r['cutoff']}</td><td>{e}</td>{_grade_cells(r[e])}</tr>"
            for r in sw["rows"] for e in EXITS
        )  # fmt: skip
        parts.append(f"<h2>Threshold sweep of {html.escape(sw['feature'])} (net)</h2><table><tr><th>cutoff</th><th>exit</th>{head}</tr>{body}</table>")  # fmt: skip
    if report.get("ablation"):
        body = "".join(
            f"<tr><td>{html.escape(r['without'])}</td><td>{e}</td>{_grade_cells(r[e])}</tr>"
            for r in report["ablation"] for e in EXITS
        )  # fmt: skip
        parts.append(f"<h2>Gate ablation (net)</h2><table><tr><th>without</th><th>exit</th>{head}</tr>{body}</table>")  # fmt: skip
    if report["time_exits"]:
        body = "".join(
            f"<tr><td>{r['hold_bars']}</td>{_grade_cells(r)}</tr>" for r in report["time_exits"]
        )
        parts.append(f"<h2>Time exits, qualified setups (net)</h2><table><tr><th>hold bars</th>{head}</tr>{body}</table>")  # fmt: skip
    if report.get("book"):
        b = report["book"]
        cells = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in b.items()
        )
        parts.append(f"<h2>The book through the engine</h2><table>{cells}</table>"
                     f"<p class='meta'>Its tear sheet: {html.escape(b['run_folder'])}/tearsheet.html</p>")  # fmt: skip
    body = "".join(
        f"<tr><td>{html.escape(r['feature'])}</td><td>{r['windows']}</td><td>{_fmt(r['mean_ic'])}</td><td>{_fmt(r['t_stat'])}</td></tr>"
        for r in report["feature_ics"]
    )  # fmt: skip
    parts.append(f"<h2>Feature rank ICs with R (non-overlapping windows)</h2><table><tr><th>feature</th><th>windows</th><th>mean IC</th><th>t-stat</th></tr>{body}</table>")  # fmt: skip
    return report_page.page(f"Setup study: {report['setups_file']}", "\n".join(parts))


def main() -> int:
    parser = cli.parser(__doc__, prog="python -m equity_backtest.research.setups")
    parser.add_argument("--setups", required=True, metavar="PATH",
                        help="a file with setups(view, params) and GATES or qualifies()")  # fmt: skip
    parser.add_argument("--every", type=int, default=5, help="bars between study days")
    parser.add_argument("--sweep-feature", help="the feature the threshold sweep varies")
    parser.add_argument("--out", help="output folder (default: results/setups_<file>)")
    parser.add_argument("--book", type=int, metavar="K",
                        help="also replay the qualified setups through the engine as one book "
                        "of at most K positions (its own archive and tear sheet)")  # fmt: skip
    parser.add_argument("--risk-per-trade", type=float, default=0.01,
                        help="book: fraction of equity lost at a position's stop")  # fmt: skip
    parser.add_argument("--max-weight", type=float, default=0.2,
                        help="book: the largest weight of one position")  # fmt: skip
    args = parser.parse_args()
    cli.setup_logging(args)
    if args.every < 1:
        raise BadInputError("--every must be at least 1 bar")
    if args.book is not None:
        Book.check(args.book, args.risk_per_trade, args.max_weight)  # before the study runs
    params = cli.load(args)
    rule = SetupRule.load(args.setups)
    panel = load_panel(params)
    study = run_study(panel, params, rule, args.every)
    report = summarise(study, panel, params, args.sweep_feature)
    out = Path(args.out) if args.out else Path(params.results_dir) / f"setups_{rule.name}"
    if args.book is not None:
        report["book"] = run_book(params, args.setups, out, args.book, args.risk_per_trade,
                                  args.max_weight, args.sweep_feature)  # fmt: skip
        report["findings"] = findings(report)
    for line in report["findings"]:
        cli.log.info("%s", line)
    outcomes = pd.concat(
        [study.setups.drop(columns="t"), study.outcomes["target"].drop(columns=["date", "ticker", "direction"])],
        axis=1,
    )  # fmt: skip
    print(report_files(report, outcomes, out))
    return 0


if __name__ == "__main__":
    cli.run(main)
