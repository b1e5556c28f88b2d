"""Per-bar returns of a run from its archive (V1): portfolio, benchmark and risk-free."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from ..data.frequency import PERIODS_PER_YEAR, periodic_rate
from ..engine.archive import read_run


@dataclasses.dataclass
class RunData:
    run_dir: Path
    runtime: pd.DataFrame
    trades: pd.DataFrame
    positions: pd.DataFrame
    cash_ledger: pd.DataFrame
    metadata: pd.DataFrame
    parameters: dict
    run_info: dict
    returns: pd.Series  # portfolio, per bar; the first bar's return is measured from starting cash
    benchmark: pd.Series  # NaN where the benchmark could not be computed
    rf_daily: float  # the risk-free rate per bar (daily for daily bars)
    periods: int = 252  # bars per year (run.json; runs written before it had it were daily)
    bar_frequency: str = "daily"

    @property
    def has_benchmark(self) -> bool:
        """Whether the benchmark is known on every bar: 04 compares only against a whole one."""
        return bool(len(self.benchmark)) and bool(self.benchmark.notna().all())


# settings 04 may change when it evaluates a finished run (04 --set); anything else was fixed by 03
EVALUATION_SETTINGS = ("risk_free_rate", "contest_checks")


def bar_returns(value: pd.Series, start: float) -> pd.Series:
    """Per-bar returns of a value series, the first from the value before it (the starting
    value): a run's, and a live account's."""
    previous = value.shift(1)
    previous.iloc[0] = start
    return value / previous - 1.0


def load_run(
    run_dir: str | Path, risk_free_rate: float | None = None, contest_checks: bool | None = None
) -> RunData:
    """Read what 03 wrote; a missing or partial folder is a clear error. `risk_free_rate` and
    `contest_checks` replace the run's own for the evaluation."""
    run_dir = Path(run_dir)
    files = read_run(run_dir)  # the archive's own list of its files and how each is read
    runtime, trades = files["runtime_log.csv"], files["trades.csv"]
    positions, cash_ledger = files["positions.feather"], files["cash_ledger.csv"]
    metadata = files["metadata.csv"]
    bench = files["benchmark.csv"].set_index("date")["return"]
    params = dict(files["parameters.json"])
    if risk_free_rate is not None:
        params["risk_free_rate"] = float(risk_free_rate)
    if contest_checks is not None:
        params["contest_checks"] = bool(contest_checks)
    info = files["run.json"]
    value = runtime.set_index("date")["value"]
    returns = bar_returns(value, info.get("starting_value", params["starting_cash"]))
    returns = returns.rename("portfolio")
    bench = bench.reindex(returns.index).rename("benchmark")
    frequency = info.get("bar_frequency", "daily")
    periods = int(info.get("periods_per_year", PERIODS_PER_YEAR[frequency]))
    return RunData(
        run_dir,
        runtime,
        trades,
        positions,
        cash_ledger,
        metadata,
        params,
        info,
        returns,
        bench,
        periodic_rate(params["risk_free_rate"], periods),
        periods,
        frequency,
    )


def load_run_regimes(run: RunData) -> pd.DataFrame | None:
    """The market regimes of the run's source in the dataset version it traded on (a simulated
    market records its own); None when that version is not on this machine."""
    from ..data.datasets import load_table

    info = json.loads((run.run_dir / "dataset.json").read_text())
    folder = Path(info["datasets_dir"]) / info["version"]
    if not folder.is_dir():
        return None
    regimes = load_table(folder, "regimes")
    regimes = regimes[regimes["source"].astype(str) == str(run.parameters.get("source"))]
    return regimes[["start", "end", "regime"]].reset_index(drop=True)


def load_run_panel(run: RunData):
    """The dataset version the run traded on, as a panel (for checks that need market data)."""
    import datetime as dt

    from ..config import FIELDS, Parameters
    from ..data.panel import load_panel

    info = json.loads((run.run_dir / "dataset.json").read_text())
    values = {k: v for k, v in run.parameters.items() if k in FIELDS}
    for k in ("sim_start", "sim_end", "start", "end"):
        values[k] = dt.date.fromisoformat(values[k])
    values.update(datasets_dir=info["datasets_dir"], dataset_version=info["version"])
    return load_panel(Parameters(**values))


def benchmark_label(run: RunData) -> str:
    """What the benchmark is, for labels: '<index> index' for the point-in-time index (e.g.
    'TOP100 index'), else the supplied series' own name (a ticker such as GOOG)."""
    name = str(run.run_info.get("benchmark", "index"))
    if name != "index":
        return name
    index = str(run.parameters.get("index", "")).strip()
    return f"{index} index" if index and index.upper() != "ALL" else "index"
