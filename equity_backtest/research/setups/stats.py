"""The study's statistics: setups collected on study days and walked, graded in R (gross and
net of the engine's costs), the qualified against the control group, threshold sweeps, gate
ablation, time exits, feature ICs, and the findings drawn from them."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from ...config import Parameters
from ...data.panel import Panel
from ...engine.clock import heartbeat_range
from ...engine.view import View
from ...errors import BadInputError
from ...evaluation import inference
from ..factors import _spearman
from .rules import CORE, EXITS, SWEEP_CUTOFFS, TIME_EXITS, SetupRule, Tape, walk


def cost_in_r(outcomes: pd.DataFrame, params: Parameters) -> np.ndarray:
    """The engine's per-share costs in and out, in R (see the module docstring's formula)."""
    frac = (params.spread_bps / 2 + params.slippage_bps) / 1e4 + params.commission_rate
    turnover = outcomes["entry_price"] + outcomes["exit_price"]
    cost = turnover * frac + 2 * params.commission_per_share
    return (cost / outcomes["risk"]).to_numpy()


def grade(r: np.ndarray, periods: np.ndarray | None = None, lags: int = 0) -> dict:
    """Count, hit rate, expectancy, median, profit factor, expectancy without the top 5% of
    winners (does the edge live in a few outliers?), and the expectancy's inference: with
    `periods` (each setup's study day, in study-day units) Driscoll-Kraay standard errors that
    let setups of one day correlate and days up to `lags` apart overlap (the holding horizon);
    the naive t beside it."""
    r = np.asarray(r, dtype=float)
    ok = np.isfinite(r)
    periods = np.arange(len(r)) if periods is None else np.asarray(periods)[ok]
    r = r[ok]
    n = len(r)
    if n == 0:
        return {"count": 0}
    stats = inference.panel_mean(r, periods, lags)
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
        "t_stat": _finite(stats["t_stat"]),
        "t_stat_naive": _finite(stats["t_stat_naive"]),
        "se_r": _finite(stats["se"]),
        "ci95_r": [_finite(v) for v in stats["ci95"]],
        "study_days": stats["periods"],
        "overlap_lags": stats["lags"],
    }


def _finite(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def _graded(outcomes: pd.DataFrame, mask: np.ndarray, lags: int) -> dict:
    """Grades of the selected outcomes (their `period` column: the study day in study-day
    units), gross and net, all and by direction."""
    sel = outcomes[mask]
    p = sel["period"].to_numpy()
    out = {"gross": grade(sel["r"], p, lags), "net": grade(sel["r_net"], p, lags)}
    for d, name in ((1, "long"), (-1, "short")):
        part = sel[sel["direction"] == d]
        if len(part):
            q = part["period"].to_numpy()
            out[name] = {"gross": grade(part["r"], q, lags), "net": grade(part["r_net"], q, lags)}
    return out


@dataclasses.dataclass
class Study:
    rule: SetupRule
    setups: pd.DataFrame  # every setup with its features and the day index t
    outcomes: dict[str, pd.DataFrame]  # by exit rule, aligned with setups
    tape: Tape  # the panel's split factors and delistings, for further walks
    every: int = 5  # bars between study days

    def lags(self, horizon: int | None = None) -> int:
        """Study days over which setups can still be open together: the holding horizon (the
        longest one, unless given) in study days."""
        bars = int(self.setups["horizon"].max()) if horizon is None else int(horizon)
        return max(0, math.ceil(bars / self.every))


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
        walk(panel, int(t), group, tape, exit_rule, hold).assign(t=int(t))
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
    for o in outcomes.values():
        o["period"] = o["t"] // every  # consecutive study days are consecutive periods
    return Study(rule, setups, outcomes, tape, every)


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
    lags = study.lags()
    report = {
        "setups_file": rule.name,
        "gates": rule.gates,
        "study_days": int(setups["t"].nunique()),
        "setups": int(len(setups)),
        "qualified": int(qualified.sum()),
        "outcome_counts": target["outcome"].value_counts().to_dict(),
        "exits": {
            e: {
                "qualified": _graded(o, qualified, lags),
                "control": _graded(o, np.ones(len(o), bool), lags),
            }
            for e, o in study.outcomes.items()
        },
        "inference": {
            "method": "Driscoll-Kraay",
            "about": "standard errors of an expectancy that let the setups of one study day "
            "correlate (one market) and study days up to the holding horizon apart overlap "
            f"(Bartlett weights over {lags} study days of {study.every} bars); the naive t "
            "beside it treats every setup as independent",
            "lags": lags,
            "every": study.every,
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
                    **{e: _graded(o, others & (values >= c), lags)["net"] for e, o in study.outcomes.items()},
                }
                for c in SWEEP_CUTOFFS
            ],
        }  # fmt: skip
    if rule.gates:
        report["ablation"] = [
            {
                "without": g,
                **{
                    e: _graded(o, rule.qualified(setups, params, without=g), lags)["net"]
                    for e, o in study.outcomes.items()
                },
            }
            for g in rule.gates
        ]
    report["time_exits"] = [
        {"hold_bars": n, **_graded(_with_periods(outcomes_for(panel, params, setups[qualified], "horizon", n, study.tape), study.every),
                                   np.ones(int(qualified.sum()), bool), study.lags(n))["net"]}
        for n in TIME_EXITS
    ] if qualified.any() else []  # fmt: skip
    report["feature_ics"] = _feature_ics(setups, study.outcomes["horizon"], feats)
    best = recommended_exit(report)
    if best is not None:
        net = study.outcomes[best]["r_net"].to_numpy(dtype=float)
        report["r_distribution"] = {
            "exit": best,
            "edges": [float(e) for e in R_EDGES],
            "qualified": _histogram(net[qualified]),
            "control": _histogram(net),
        }
    report["findings"] = findings(report)
    return report


R_EDGES = np.arange(-3.0, 5.01, 0.25)  # R bins of the distribution chart (the ends take the tails)


def _histogram(r: np.ndarray) -> list[int]:
    r = np.clip(r[np.isfinite(r)], R_EDGES[0], R_EDGES[-1])
    return [int(c) for c in np.histogram(r, R_EDGES)[0]]


def recommended_exit(report: dict) -> str | None:
    """The exit with the higher net expectancy per qualified setup (None when none qualified)."""
    q = {e: report["exits"][e]["qualified"]["net"] for e in EXITS}
    if not q["target"].get("count"):
        return None
    return max(EXITS, key=lambda e: q[e].get("expectancy_r", -np.inf))


def _with_periods(outcomes: pd.DataFrame, every: int) -> pd.DataFrame:
    return outcomes.assign(period=outcomes["t"] // every)


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
        nw = inference.series_mean(ics)
        out.append({
            "feature": feat, "windows": len(ics),
            "mean_ic": float(ics.mean()) if len(ics) else None,
            "t_stat": _finite(nw["t_stat"]) if len(ics) > 1 else None,  # Newey-West
            "t_stat_naive": _finite(nw["t_stat_naive"]) if len(ics) > 1 else None,
        })  # fmt: skip
    return out


def findings(report: dict) -> list[str]:
    """Plain statements drawn from the numbers: each flips when the numbers flip."""
    out = []
    ex = report["exits"]
    q = {e: ex[e]["qualified"]["net"] for e in EXITS}
    c = {e: ex[e]["control"]["net"] for e in EXITS}
    best = recommended_exit(report)
    if best is None:
        return ["No setup qualified: nothing to grade."]
    other = next(e for e in EXITS if e != best)
    out.append(
        f"Use the {'setup target' if best == 'target' else 'hold-to-horizon'} exit: "
        f"{q[best]['expectancy_r']:+.3f}R net per qualified setup against "
        f"{q[other]['expectancy_r']:+.3f}R with the {other} exit."
    )
    diff = q[best]["expectancy_r"] - c[best]["expectancy_r"]
    verdict = "beat" if diff > 0 else "did not beat"
    out.append(
        f"Qualified setups {verdict} the control group by {diff:+.3f}R net "
        f"({q[best]['count']:,d} vs {c[best]['count']:,d} setups)."
    )
    t, naive, (low, high) = q[best].get("t_stat"), q[best].get("t_stat_naive"), q[best]["ci95_r"]
    lags = report.get("inference", {}).get("lags", 0)
    edge = low is not None and high is not None and (low > 0 or high < 0)
    if low is None or high is None:
        out.append("Too few study days to judge the qualified setups' expectancy.")
    else:
        out.append(
            f"The qualified expectancy, {q[best]['expectancy_r']:+.3f}R net, has t = {t:.2f} with "
            f"standard errors clustered by study day and allowing overlap over {lags} study days "
            f"(the naive t, as if every setup were independent, is {naive:.2f}): "
            + inference.evidence({"ci95": [low, high]}, "R")
            + "."
        )
    trimmed = q[best].get("expectancy_without_top5pct_r")
    if trimmed is not None and edge:
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
        how = (
            "the exit the study recommends"
            if book.get("exit_chosen_by") == "the study"
            else "the exit given by --book-exit"
        )
        out.append(
            f"The capital-constrained book ({book['positions']} positions, "
            f"{'targets' if book.get('exit') == 'target' else 'held to the horizon'}: {how}) "
            "returned "
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
