"""One backtest from parameters to a finished run archive: what 03_trade.py does for one run."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..cli import add_log_file
from ..config import Parameters
from ..data import frequency
from ..data.holdings import read_holdings, where_is
from ..data.panel import Panel, load_panel
from ..engine import archive
from ..engine.checkpoint import Checkpoints, file_digest, fingerprint
from ..engine.clock import heartbeat_range
from ..engine.comparison import INDEX, benchmark_returns
from ..engine.loop import run_backtest
from ..engine.strategy_loader import load_compute_weights
from ..errors import BadInputError
from ..evaluation import contest
from ..infra import locks

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunOutcome:
    run_dir: Path
    status: str
    final_value: float


def default_run_dir(params: Parameters) -> Path:
    """results/<time>__<source>__<index>__<algorithm>; a run started in the same second as
    another (concurrent backtests are allowed) gets `-2`, `-3`, ... after its name."""
    name = archive.run_name(dt.datetime.now(dt.UTC), params, Path(params.algorithm))
    k, run_dir = 2, Path(params.results_dir) / name
    while not archive.reserve(run_dir):  # atomic: two runs started at once get two names
        run_dir, k = Path(params.results_dir) / f"{name}-{k}", k + 1
    return run_dir


def starting_shares(panel: Panel, params: Parameters, holdings) -> np.ndarray | None:
    """Holdings as a share vector over the panel's tickers; each must have a price by the start."""
    if holdings is None:
        return None
    shares = np.zeros(len(panel.tickers))
    t0, _ = heartbeat_range(panel.dates, params.start, params.end)
    pos = panel.labels.get_indexer(holdings.index)
    for ticker, i in zip(holdings.index, pos, strict=True):
        if i < 0 or not np.isfinite(panel.mark[t0, i]):
            raise BadInputError(
                f"{where_is(holdings, ticker)}: {ticker!r} has no price in dataset "
                f"{panel.dataset_version} on or before the start ({panel.dates[t0]:%Y-%m-%d}); "
                "check the ticker or the start date"
            )
    shares[pos] = holdings.to_numpy()
    return shares


def run_fingerprint(params: Parameters) -> str:
    """What a run depends on: a checkpoint is resumed only by a run with the same inputs."""
    from ..data.datasets import current_version

    return fingerprint(
        {
            "parameters": params.as_dict(),
            "algorithm": file_digest(params.algorithm),
            "dataset": params.dataset_version or current_version(params.datasets_dir),
            "holdings": file_digest(params.starting_holdings),
        }
    )


def resumable_run(results_dir: str | Path, fp: str) -> Path | None:
    """The run folder of the latest killed run with these inputs and a checkpoint, if any."""
    root = Path(results_dir)
    if not root.is_dir():
        return None
    for partial in sorted(root.glob(".*.partial"), reverse=True):
        if locks.owned_by_live_process(partial):
            continue  # a run going on now, perhaps with the same inputs: not ours to resume
        if Checkpoints(partial, fp, 1).load() is not None:
            log.info("a killed run with the same inputs left a checkpoint: resuming %s", partial)
            return root / partial.name[1:].removesuffix(".partial")
    return None


CASH_NOTE_SHARE = 0.02  # mean cash weight above which a run says that its cash earned nothing
LLM_SESSION = f"{__package__.rpartition('.')[0]}.llm.session"


def llm_decisions(panel: Panel, params: Parameters, result, window) -> pd.DataFrame | None:
    """The LLM decisions the run traded on, whatever its algorithm file is called (the session
    records each decision handed to the strategy), with their forward returns over 63 bars,
    scored on the data after the run's end where the dataset has it (those still too near the
    data's end are marked partial and counted, not scored), so 04 evaluates exactly this run's
    decisions from the archive alone. A run of strategies/llm.py also gets the decisions of the
    days before a resume from a checkpoint (rebuilt from the panel)."""
    session = sys.modules.get(LLM_SESSION)  # imported only when a strategy asked a model
    if session is None or not params.llm_model:
        return None
    from ..engine.clock import rebalance_days
    from ..llm import evaluate as llm_evaluate

    frame = session.used_decisions()
    if Path(params.algorithm).stem == "llm":
        last = panel.dates.get_loc(result.runtime_log["date"].iloc[-1])
        days = np.flatnonzero(rebalance_days(panel.dates, window[0], last, params.rebalance))
        rebuilt = session.run_decisions(panel, params, days)
        frame = pd.concat([rebuilt, frame[~frame["key"].isin(rebuilt["key"])]], ignore_index=True)
    if frame.empty:
        return None
    scoring = load_panel(
        params.replace(end=pd.Timestamp.max.date())
    )  # the data after the run's end too
    return llm_evaluate.forward_returns(scoring, frame, llm_evaluate.HORIZON)


def keep_failed_log(tmp: Path, run_dir: Path) -> Path | None:
    """A failed run leaves no archive, but its log survives as `<run name>.failed.log` beside
    where the archive would have been (a file, never mistaken for a run folder)."""
    source = tmp / "run.log"
    if not source.is_file():
        return None
    target = run_dir.parent / f"{run_dir.name}.failed.log"
    shutil.copyfile(source, target)
    return target


def window_notes(panel: Panel, params: Parameters) -> list[str]:
    """Say so when the backtest window reaches past the data by more than one bar's spacing (it
    runs on the days there are)."""
    notes = []
    slack = pd.Timedelta(days=frequency.MAX_SPACING_DAYS[frequency.infer(panel.dates)])
    if pd.Timestamp(params.end) > panel.dates[-1] + slack:
        notes.append(
            f"end = {params.end:%Y-%m-%d} is after the data's last day {panel.dates[-1]:%Y-%m-%d}; "
            "the backtest ends there"
        )
    if pd.Timestamp(params.start) < panel.dates[0] - slack:
        notes.append(
            f"start = {params.start:%Y-%m-%d} is before the data's first day "
            f"{panel.dates[0]:%Y-%m-%d}; the backtest starts there"
        )
    # more than a year of data left unused beyond the lookback's own history: rarely meant
    lookback = pd.Timedelta(days=params.lookback_days * 365.25 / 252)
    unused = pd.Timestamp(params.start) - panel.dates[0] - lookback
    if unused > pd.Timedelta(days=365):
        notes.append(
            f"start = {params.start:%Y-%m-%d} leaves out {unused.days / 365.25:.1f} years of "
            f"data after the lookback's {params.lookback_days} days (the data begins "
            f"{panel.dates[0]:%Y-%m-%d}); set start earlier to use them"
        )
    return notes


# trading days between decisions, for comparing a rule's declared pace with the run's
_BARS_BETWEEN = {"daily": 1, "weekly": 5, "monthly": 21, "quarterly": 63, "yearly": 252}


def _bars_between(rule) -> float:
    if isinstance(rule, int):
        return float(rule)
    return _BARS_BETWEEN.get(rule, float("inf"))  # "never"


def pace_note(compute_weights, params: Parameters) -> list[str]:
    """Say so when the algorithm declares the pace it was written for (a module-level
    `REBALANCE = "daily"`, as a moving-average cross is) and the run asks it less often: a daily
    rule asked monthly sees one bar in 21 and acts on that one alone, silently another strategy."""
    declared = getattr(compute_weights, "__globals__", {}).get("REBALANCE")
    if declared is None or _bars_between(params.rebalance) <= _bars_between(declared):
        return []
    return [
        f"the algorithm declares REBALANCE = {declared!r} (the pace it was written for), but "
        f"rebalance = {params.rebalance!r} asks it less often, so it acts on fewer bars than "
        f"written; set rebalance = {declared!r} (--set rebalance={declared}) to run it as written"
    ]


def cash_note(result, params: Parameters) -> list[str]:
    """Say so when the portfolio kept a noticeable share in cash that earned nothing: an index
    tracker 95% invested trails its index for that reason alone (dividends wait as cash for the
    next rebalance, and cash_buffer keeps some back)."""
    runtime = result.runtime_log
    if params.cash_interest or runtime.empty:
        return []
    value = runtime["value"].to_numpy(dtype=float)
    share = np.divide(
        runtime["cash"].to_numpy(dtype=float), value, where=value > 0, out=np.zeros_like(value)
    )
    mean = float(share[len(share) // 10 :].mean()) if len(share) else 0.0  # after the start
    if mean <= CASH_NOTE_SHARE:
        return []
    return [
        f"the portfolio held {mean:.1%} of its value in cash on average, which earns nothing "
        f"(cash_interest = False): cash_buffer = {params.cash_buffer:g} keeps some back, and "
        f"dividends and sale proceeds wait as cash until an order uses them (no_trade_band = "
        f"{params.no_trade_band:g} leaves small drifts untraded); set cash_interest = True to "
        "earn the risk-free rate on it"
    ]


def idle_note(result, panel: Panel, fill_timing: str = "open") -> list[str]:
    """Say so when the run stayed all cash, which is rarely what was meant: the algorithm never
    asked for a position (e.g. cap weights on data without market caps), or it did and no order
    ever filled (e.g. fills at the open on close-only data)."""
    days = int(result.runtime_log["rebalance"].sum())
    if days == 0 or len(result.trades):
        return []
    if len(result.target_weights):
        hint = (
            f"; the data has no {fill_timing} prices to fill at (close-only data needs "
            'fill_timing = "close")'
            if not np.isfinite(panel.fields[fill_timing]).any()
            else ""
        )
        return [
            f"compute_weights set target weights but no order filled on any of the {days} "
            f"rebalance days: the portfolio stayed in cash{hint}"
        ]
    caps = panel.fields["market_cap"]
    hint = (
        "; the data has no market caps, which the default algorithm.py weights by (try "
        "--algorithm strategies/equal_weight.py)"
        if not np.isfinite(caps).any()
        else ""
    )
    return [
        f"compute_weights asked for no position on any of the {days} rebalance days: the "
        f"portfolio stayed in cash{hint}"
    ]


def run_single(
    params: Parameters,
    parameters_path: Path,
    run_dir: Path | None = None,
    progress: bool = False,
    compute_weights: Callable | None = None,
) -> RunOutcome:
    """Load, trade and archive one run. The folder appears (atomically) only when complete.
    `compute_weights`: a function to run instead of loading params.algorithm, which is then only
    its record (copied into the archive, fingerprinted); the Python API passes notebook functions
    this way."""
    algorithm_path = Path(params.algorithm)
    compute_weights = compute_weights or load_compute_weights(algorithm_path)
    if LLM_SESSION in sys.modules:  # decisions used by an earlier run of this process are not ours
        sys.modules[LLM_SESSION].forget_used()
    holdings = (
        read_holdings(params.starting_holdings, params.allow_short)
        if params.starting_holdings
        else None
    )
    fp = run_fingerprint(params)
    archive.clear_abandoned(params.results_dir)
    run_dir = run_dir or resumable_run(params.results_dir, fp) or default_run_dir(params)
    partial = archive.partial_dir(run_dir)
    checkpoints = Checkpoints(partial, fp, params.checkpoint_days, params.checkpoint_after_s)
    tmp = archive.start_run_dir(run_dir, keep_partial=checkpoints.load() is not None)
    handler = add_log_file(tmp / "run.log")
    try:
        log.info(
            "run %s: %s on %s/%s, %s to %s, rebalance %s",
            run_dir.name,
            algorithm_path.name,
            params.source,
            params.index,
            params.start,
            params.end,
            params.rebalance,
        )
        extra = tuple(holdings.index) if holdings is not None else ()
        if params.benchmark != INDEX:
            extra += (params.benchmark,)
        panel = load_panel(params, extra_tickers=extra)
        log.info(
            "dataset %s: %d trading days x %d tickers",
            panel.dataset_version,
            len(panel.dates),
            len(panel.tickers),
        )
        result = run_backtest(
            panel,
            params,
            compute_weights,
            algorithm_path.name,
            progress,
            starting_shares(panel, params, holdings),
            checkpoints,
        )
        window = heartbeat_range(panel.dates, params.start, params.end)
        benchmark, gaps = benchmark_returns(panel, params.benchmark, *window)
        benchmark = benchmark.loc[: result.runtime_log["date"].iloc[-1]]
        idle = idle_note(result, panel, params.fill_timing)  # (all cash: said there, once)
        notes = gaps + window_notes(panel, params) + pace_note(compute_weights, params)
        for text in notes + (idle or cash_note(result, params)):
            log.warning("%s", text)
            result.warnings.append(text)
        held = contest.held_inputs(panel, result.positions) if params.contest_checks else None
        llm = llm_decisions(panel, params, result, window)
        archive.write_archive(
            tmp,
            result,
            params,
            parameters_path,
            algorithm_path,
            panel,
            benchmark,
            Path(params.datasets_dir),
            held,
            llm,
        )
        checkpoints.discard()  # the archive is complete: nothing left to resume
        final = float(result.runtime_log["value"].iloc[-1])
        log.info("final value %.2f (%s); archive: %s", final, result.status, run_dir)
    except BaseException as exc:
        logging.getLogger().removeHandler(handler)
        handler.close()
        if not (isinstance(exc, KeyboardInterrupt) and checkpoints.path.exists()):
            kept = keep_failed_log(tmp, run_dir)
            shutil.rmtree(tmp, ignore_errors=True)  # a failed run leaves no archive behind
            if kept:
                log.error("the failed run's log, with the full traceback: %s", kept)
        raise
    logging.getLogger().removeHandler(handler)
    handler.close()
    archive.finish_run_dir(tmp, run_dir)
    return RunOutcome(run_dir, result.status, final)
