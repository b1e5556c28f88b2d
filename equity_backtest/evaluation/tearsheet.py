"""The evaluation of one run (04): metrics.json, CSV tables, pyfolio exports and the tear sheet.

`compute` reads the run folder and returns every metric and table; `evaluate` writes them, with
the page rendered by `tearsheet_html` from the same dictionary as metrics.json.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..engine import archive
from ..errors import BacktestError
from ..infra.storage import (
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_text,
    remove_abandoned_temporaries,
)
from . import contest
from . import metrics as m
from .exports import write_pyfolio
from .findings import findings
from .returns import RunData, benchmark_label, load_run, load_run_panel, load_run_regimes
from .tables import drawdown_periods, monthly_returns, rolling_stats, stress_events, yearly_returns
from .tearsheet_html import LABELS, figures_for, fmt, render_html  # noqa: F401
from .trading import (
    by_day,
    exposures,
    round_trip_stats,
    round_trips,
    sector_weights,
    top_holdings,
)

log = logging.getLogger(__name__)


def _benchmark_metrics(run: RunData, periods: int) -> dict:
    b = run.benchmark.to_numpy()
    if not run.has_benchmark:
        b = np.full_like(b, np.nan)
    out = m.return_metrics(b, run.rf_daily, periods)
    out.update(m.trailing_returns(b, periods))
    if run.has_benchmark:
        out.update(m.best_and_worst(run.benchmark.fillna(0.0)))
    return out


def settings(run: RunData) -> dict[str, str]:
    """What a reader needs to judge the numbers, in words: the rule, its schedule and costs,
    the data and the conventions of fills, bars, benchmark, cash and the Sharpe ratio."""
    p, info = run.parameters, run.run_info
    try:
        dataset = json.loads((run.run_dir / "dataset.json").read_text())
    except (OSError, ValueError):
        dataset = {}
    costs = (
        f"spread {p.get('spread_bps', 0):g} bps, slippage {p.get('slippage_bps', 0):g} bps, impact "
        f"coefficient {p.get('impact_coef', 0):g}, commission {p.get('commission_rate', 0) * 1e4:g} "
        f"bps (minimum {p.get('commission_min', 0):g}), at most {p.get('volume_cap', 0):.0%} of a "
        "day's volume"
    )
    return {
        "algorithm": str(info.get("algorithm", p.get("algorithm", "?"))),
        "data": f"{p.get('source')}/{p.get('index')}, dataset {dataset.get('version', '?')}",
        "window": f"{p.get('start')} to {p.get('end')}",
        "rebalancing": str(p.get("rebalance")),
        "bars": f"{run.bar_frequency} ({run.periods} a year)",
        "fills": f"at the next bar's {p.get('fill_timing')}",
        "costs": costs,
        "cash": f"{p.get('cash_buffer', 0):.1%} kept back; "
        + ("earns the risk-free rate" if p.get("cash_interest") else "earns nothing"),
        "benchmark": benchmark_label(run),
        "risk-free rate": f"{float(p.get('risk_free_rate', 0)):.2%} a year (Sharpe and Sortino are "
        "in excess of it; the rf = 0 Sharpe, as pyfolio and quantstats show by default, is beside it)",
        **(
            {"fundamentals": dataset["fundamentals_vintage"] + _restated_lag(p)}
            if "fundamentals_vintage" in dataset
            else {}
        ),
    }


def _restated_lag(p: dict) -> str:
    days = int(p.get("restated_lag_days") or 0)
    return (
        f"; this run saw each {days} days after its first report (restated_lag_days)"
        if days
        else ""
    )


def compute(run: RunData) -> tuple[dict, dict[str, pd.DataFrame]]:
    """All metrics and tables of a run: (JSON-ready dict, tables for CSV and plots)."""
    r, b = run.returns.to_numpy(), run.benchmark.to_numpy()
    start_value = float(run.run_info.get("starting_value", run.parameters["starting_cash"]))
    final_value = float(run.runtime["value"].iloc[-1])
    dates = pd.DatetimeIndex(run.runtime["date"])
    expo = exposures(run.positions, run.runtime)
    trips = round_trips(run.positions, run.cash_ledger, dates)
    P = run.periods
    trading = m.trading_metrics(run.runtime, run.trades, start_value, P)
    gross_profit = final_value - start_value + trading["total_costs"]
    trading["costs_pct_of_gross_profit"] = (
        trading["total_costs"] / gross_profit if gross_profit > 0 else float("nan")
    )
    for col in ("interest", "short_fees"):
        trading[col] = float(run.runtime[col].sum()) if col in run.runtime else 0.0
    portfolio = m.return_metrics(r, run.rf_daily, P)
    portfolio.update(m.trailing_returns(r, P))
    portfolio.update(m.best_and_worst(run.returns))
    portfolio["gross_leverage"] = float(expo["gross"].mean())
    portfolio["net_exposure"] = float(expo["net"].mean())
    monthly = monthly_returns(run.returns)
    yearly = yearly_returns(run.returns, run.benchmark)
    dd = drawdown_periods(run.returns)
    source = run.parameters.get("source")
    regimes = load_run_regimes(run) if source == "simulated" else None
    stress = stress_events(run.returns, run.benchmark, source, regimes)
    tables = {
        "drawdowns": dd, "stress_events": stress, "monthly_returns": monthly, "yearly_returns": yearly,
        "rolling": rolling_stats(run.returns, run.benchmark, run.rf_daily, P), "round_trips": trips,
        "exposures": expo, "sector_weights": sector_weights(run.positions, run.metadata),
        "top_holdings": top_holdings(run.positions, run.metadata, len(r)),
    }  # fmt: skip
    metrics = {
        # what ran, not the folder's name: two runs with the same inputs evaluate identically
        "run": f"{run.run_info.get('algorithm', '?')} on "
        f"{run.parameters.get('source', '?')}/{run.parameters.get('index', '?')}",
        "status": run.run_info.get("status"),
        "period": {"start": f"{dates[0]:%Y-%m-%d}", "end": f"{dates[-1]:%Y-%m-%d}", "days": len(r)},
        "risk_free_rate": float(run.parameters["risk_free_rate"]),
        "starting_value": start_value,
        "final_value": final_value,
        "portfolio": portfolio,
        "bar_frequency": run.bar_frequency,
        "periods_per_year": P,
        "benchmark_name": run.run_info.get("benchmark", "index"),
        "benchmark_label": benchmark_label(run),
        "benchmark_available": run.has_benchmark,
        # never compared against a benchmark with gaps: its figures are left empty
        "benchmark": _benchmark_metrics(run, P),
        "settings": settings(run),
        "relative": m.relative_metrics(
            r, b if run.has_benchmark else np.full_like(b, np.nan), run.rf_daily, P
        ),
        "trading": trading,
        "round_trips": round_trip_stats(trips),
        "drawdowns": _records(dd),
        "top_holdings": _records(tables["top_holdings"]),
        "stress_events": _records(stress),
        "yearly_returns": _records(yearly.reset_index()),
        "monthly_returns": {
            str(y): [None if not np.isfinite(v) else float(v) for v in row]
            for y, row in zip(monthly.index, monthly.to_numpy(dtype=float), strict=True)
        },
        "warnings": run.run_info.get("warnings", []),
        "conventions": f"{P} bars/year ({run.bar_frequency} bars); sample std (ddof=1); CAGR compounding; drawdown from a peak "
        "starting at the initial value; excess returns over the daily-compounded "
        "risk-free rate; VaR/CVaR historical at 95% (empyrical's definitions); daily "
        "turnover one-way: (bought + sold) / 2 / value",
        "equity_backtest": __version__,
    }
    contest_table, contest_summary = _contest(run, tables["exposures"])
    metrics["contest"] = {**contest_summary, "checks": _records(contest_table)}
    tables["contest"] = contest_table
    metrics["findings"] = findings(metrics)
    llm = _llm_decisions(run)
    if llm is not None:
        metrics["llm"], tables["llm_decisions"] = llm
        metrics["findings"] += metrics["llm"]["findings"]
    return metrics, tables


def _llm_decisions(run: RunData) -> tuple[dict, pd.DataFrame] | None:
    """For a run that traded on LLM decisions, whatever its algorithm file is called: exactly the
    decisions it used, from the archive's llm_decisions_used.csv (03 writes them with their
    forward returns), evaluated. Runs of strategies/llm.py archived before that file existed
    fall back to the decision log and the run's dataset."""
    params = run.parameters
    if not params.get("llm_model"):
        return None
    from ..llm import evaluate as llm_evaluate

    archived = archive.read_file(run.run_dir, "llm_decisions_used.csv")
    if archived is not None:
        metrics, table = llm_evaluate.score(archived)
        return metrics, table[[c for c in LLM_COLUMNS if c in table]]
    if Path(str(params.get("algorithm", ""))).stem != "llm":
        return None
    from ..llm import decision_log

    frame = decision_log.read_frame(params.get("llm_decisions_dir", "decisions"))
    if frame.empty:
        log.warning("no LLM decision log at %s", params.get("llm_decisions_dir"))
        return None
    days = run.returns.index
    dates = pd.to_datetime(frame["as_of"])
    frame = frame[(dates >= days[0]) & (dates <= days[-1])]
    frame = frame[frame["model_id"].astype(str) == str(params["llm_model"])]
    try:
        panel = load_run_panel(run)
    except BacktestError as exc:
        log.warning("LLM decisions not evaluated: %s", exc)
        return None
    metrics, table = llm_evaluate.evaluate(panel, frame.reset_index(drop=True))
    return metrics, table[[c for c in LLM_COLUMNS if c in table]]


LLM_COLUMNS = [
    "as_of", "ticker", "model_id", "quantisation", "prompt_version", "window", "status",
    "decision", "confidence", "fwd_return", "excess", "horizon_bars", "reason",
]  # fmt: skip


def _contest(run: RunData, exposure: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The Quantopian contest's rules for market-neutral strategies, only when asked for
    (contest_checks = True, or 04 --contest): a long-only index tracker is not meant to pass
    them. Styles and liquidity come from the run's contest_inputs.feather (03 writes it when
    contest_checks is on); without it those two rows say NOT MEASURED. The rules are written in
    trading days: on weekly or monthly bars they are skipped, and the summary says so."""
    empty = pd.DataFrame(columns=["constraint", "result"])
    if not run.parameters.get("contest_checks", False):
        return empty, {
            "checked": False,
            "score": None,
            "all_pass": None,
            "days": int(len(run.returns)),
            "note": "Not checked: the contest's rules are for market-neutral strategies; set "
            "contest_checks = True (or run 04 --contest) to check them.",
        }
    if run.bar_frequency != "daily":
        return empty, {
            "checked": False,
            "score": None,
            "all_pass": None,
            "days": int(len(run.returns)),
            "note": f"Skipped: the contest checks and score are defined on daily bars; this run "
            f"has {run.bar_frequency} bars.",
        }
    turnover = ((run.runtime["bought"] + run.runtime["sold"]) / 2 / run.runtime["value"]).set_axis(
        run.returns.index
    )
    sectors = run.metadata.set_index("ticker")["sector"]
    held = run.run_dir / "contest_inputs.feather"
    if held.is_file():
        inputs = contest.inputs_from_archive(
            pd.read_feather(held), run.returns, run.benchmark, run.positions, turnover, sectors
        )
    else:
        log.warning(
            "contest style and liquidity checks not measured: the run has no "
            "contest_inputs.feather (run 03 with contest_checks = True)"
        )
        weights = by_day(run.positions, "weight", run.returns.index)
        inputs = contest.ContestInputs(run.returns, run.benchmark, weights, turnover, sectors)
    table, summary = contest.check(inputs)
    return table, {"checked": True, **summary}


def _records(frame: pd.DataFrame) -> list[dict]:
    out = []
    for rec in frame.to_dict("records"):
        out.append(
            {
                k: (f"{v:%Y-%m-%d}" if isinstance(v, pd.Timestamp) else None if v is pd.NaT else v)
                for k, v in rec.items()
            }
        )
    return out


def evaluate(run_dir: str | Path, **overrides) -> dict:
    """Write metrics.json, the CSV tables, pyfolio exports and tearsheet.html into the run folder.
    `overrides`: evaluation settings to use instead of the run's (EVALUATION_SETTINGS)."""
    out = Path(run_dir)
    # metrics.json marks a run as evaluated: it goes first and comes back last, so a killed 04
    # never leaves a half-evaluated run that looks evaluated
    (out / "metrics.json").unlink(missing_ok=True)
    remove_abandoned_temporaries(out)  # a killed 04's half-written files (04 holds the lock)
    run = load_run(run_dir, **overrides)
    metrics, tables = compute(run)
    frame = run.returns.to_frame().join(run.benchmark)
    tables = {"returns": frame, **tables}
    for name, table in tables.items():
        keep_index = name not in (
            "drawdowns",
            "stress_events",
            "round_trips",
            "contest",
            "llm_decisions",
        )
        atomic_write_csv(out / f"{name}.csv", table, index=keep_index)
    write_pyfolio(run, out)
    atomic_write_bytes(
        out / "tearsheet.html", render_html(metrics, figures_for(run, tables)).encode("utf-8")
    )
    atomic_write_text(
        out / "metrics.json", json.dumps(_jsonable(metrics), indent=1, sort_keys=True) + "\n"
    )
    return metrics


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
