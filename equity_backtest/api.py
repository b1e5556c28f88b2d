"""The Python API: the four stages from a notebook, over the same files the scripts use.

    from equity_backtest import api

    params = api.parameters("parameters.py", rebalance="quarterly")   # file + overrides, checked
    api.query(params)                     # 01: vendor -> datalog
    api.build(params)                     # 02: datalog -> a dataset version
    run = api.backtest(params, algorithm="strategies/momentum_12_1.py")   # 03 (or a function)
    run.metrics["portfolio"]["sharpe_ratio"]                             # 04, on first use
    run.returns, run.benchmark, run.positions, run.trades                # pandas objects
    run.tearsheet()                       # path of tearsheet.html
    returns, positions, transactions = run.pyfolio()    # pyfolio-format frames (UTC)
    again = api.load("results/<run folder>")            # any finished run, the same way
    sweep = api.trials(params, grid={"rebalance": ["monthly", "quarterly"]})
    sweep.table, sweep.overfitting()

Everything goes through the run archive: a Run is a view of its folder, so a run made by
03_trade.py and one made here are read the same way, and a notebook never holds results that
are not on disk. 03_trade.py and 04_evaluate.py call the same functions.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from . import cli
from .config import FIELDS, Parameters, coerce, load_parameters, unknown
from .data import datasets, vendors
from .errors import BadInputError
from .run import runner
from .run import trials as trial_runs

if TYPE_CHECKING:  # the evaluation (matplotlib and all) is imported when a run is read
    from .evaluation.returns import RunData

REPO = Path(__file__).resolve().parents[1]


def parameters(path: str | Path = "parameters.py", **overrides) -> Parameters:
    """parameters.py with overrides (values as Python objects or command-line strings),
    validated like the scripts' --set: a typo or an out-of-range value is a BadInputError."""
    return load_parameters(path, {k: coerce(k, v) for k, v in overrides.items()} or None)


def _params(params: Parameters | str | Path | None, overrides: Mapping) -> Parameters:
    if params is None or isinstance(params, str | Path):
        return parameters(params or "parameters.py", **overrides)
    for name in overrides:
        if name not in FIELDS:
            raise unknown(name, "settings")
    # the same conversion as --set, so "quarterly", "0.002" or 0.002 all work
    return params.replace(**{k: coerce(k, v) for k, v in overrides.items()})


def query(params: Parameters, imports: Sequence[Sequence[str]] = ()) -> dict[str, int]:
    """01: ask the vendor (or import files) into the datalog; counts of logs written."""
    with cli.stage_lock(params.datalog_dir, "01_query_vendor"):
        return vendors.query(params, imports)


def build(params: Parameters, *, full: bool = False) -> datasets.BuildResult:
    """02: fold new logfiles into a new dataset version (switched in atomically)."""
    with cli.stage_lock(params.datasets_dir, "02_build_datasets"):
        return datasets.build(
            params.datalog_dir, params.datasets_dir, full=full, calendar=params.exchange_calendar
        )


@dataclasses.dataclass
class Run:
    """A finished run folder, read on demand; 04's evaluation runs on the first use of
    `metrics` (or explicitly with `evaluate`)."""

    folder: Path

    @functools.cached_property
    def data(self) -> RunData:
        from .evaluation.returns import load_run

        return load_run(self.folder)

    @property
    def returns(self) -> pd.Series:
        """Per-bar portfolio returns (the first from the starting value)."""
        return self.data.returns

    @property
    def benchmark(self) -> pd.Series:
        return self.data.benchmark

    @property
    def positions(self) -> pd.DataFrame:
        return self.data.positions

    @property
    def trades(self) -> pd.DataFrame:
        return self.data.trades

    @property
    def runtime(self) -> pd.DataFrame:
        """One row per heartbeat: value, cash, orders, fills, costs, dividends."""
        return self.data.runtime

    @property
    def info(self) -> dict:
        """run.json: status, window, starting and final value, warnings."""
        return json.loads((self.folder / "run.json").read_text())

    @property
    def status(self) -> str:
        return self.info["status"]

    @property
    def metrics(self) -> dict:
        path = self.folder / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else self.evaluate()

    def evaluate(self, **overrides) -> dict:
        """04 on this run (overrides: evaluation settings such as risk_free_rate)."""
        with cli.stage_lock(self.folder, "04_evaluate"):
            from .evaluation.tearsheet import evaluate as evaluate_run

            return evaluate_run(self.folder, **overrides)

    CHARTS = (
        "equity", "log_wealth", "yearly", "monthly", "rolling", "active", "distribution",
        "concentration",
    )  # fmt: skip

    def plot(self, chart: str = "equity"):
        """One of the tear sheet's charts (CHARTS) as a matplotlib Figure: the last expression
        of a notebook cell shows it inline; `fig.savefig(...)` writes it."""
        from .evaluation import plots, tables, trading
        from .evaluation.returns import benchmark_label

        data, label = self.data, benchmark_label(self.data)
        returns, bench = data.returns, data.benchmark
        drawn = {
            "equity": lambda: (plots.equity_and_drawdown, returns, bench, label),
            "log_wealth": lambda: (plots.log_wealth, returns, bench, label),
            "yearly": lambda: (plots.yearly_bars, tables.yearly_returns(returns, bench), label),
            "monthly": lambda: (plots.monthly_heatmap, tables.monthly_returns(returns)),
            "rolling": lambda: (
                plots.rolling, tables.rolling_stats(returns, bench, data.rf_daily, data.periods)
            ),
            "active": lambda: (plots.active_return, returns, bench),
            "distribution": lambda: (plots.return_histogram, returns, data.bar_frequency),
            "concentration": lambda: (
                plots.concentration,
                data.positions,
                trading.top_holdings(data.positions, data.metadata, len(returns)),
            ),
        }  # fmt: skip
        if chart not in drawn:
            raise BadInputError(f"chart {chart!r}: choose one of {', '.join(self.CHARTS)}")
        chart_fn, *args = drawn[chart]()
        return plots.figure(chart_fn, *args)

    def plot_equity(self):
        """Cumulative return against the benchmark, and the drawdown."""
        return self.plot("equity")

    def plot_yearly(self):
        """Calendar-year returns, the run's and the benchmark's."""
        return self.plot("yearly")

    def plot_monthly(self):
        """Monthly returns as a year-by-month heat map."""
        return self.plot("monthly")

    def plot_rolling(self):
        """Rolling Sharpe ratio, volatility and beta."""
        return self.plot("rolling")

    def _repr_html_(self) -> str:
        """A short summary when a run is the last expression of a notebook cell."""
        import html as _html

        from .evaluation import metrics as m
        from .evaluation.returns import benchmark_label

        data, info = self.data, self.info
        r, b = data.returns.to_numpy(), data.benchmark.to_numpy()
        rows = {
            "status": str(info.get("status")),
            "window": f"{data.returns.index[0]:%Y-%m-%d} to {data.returns.index[-1]:%Y-%m-%d}",
            "final value": f"{info.get('final_value', float('nan')):,.2f}",
            "annual return": f"{m.annual_return(r, data.periods):.2%}",
            f"annual return, {benchmark_label(data)}": (
                f"{m.annual_return(b, data.periods):.2%}" if data.has_benchmark else "n/a"
            ),
            "Sharpe ratio (rf 0)": f"{m.sharpe_ratio(r, 0.0, data.periods):.2f}",
            "max drawdown": f"{m.max_drawdown(r):.2%}",
        }
        body = "".join(
            f"<tr><th style='text-align:left'>{_html.escape(k)}</th><td>{_html.escape(v)}</td></tr>"
            for k, v in rows.items()
        )
        return (
            f"<div><strong>{_html.escape(self.folder.name)}</strong>"
            f"<table>{body}</table><small>run.plot(), run.metrics, run.tearsheet()</small></div>"
        )

    def tearsheet(self) -> Path:
        """The path of tearsheet.html (evaluating the run first if needed)."""
        if not (self.folder / "metrics.json").is_file():
            self.evaluate()
        return self.folder / "tearsheet.html"

    def pyfolio(self) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame]:
        """(returns, positions, transactions) in pyfolio's formats: UTC, split-consistent."""
        returns = self.returns.rename("returns")
        returns.index = returns.index.tz_localize("UTC")
        positions = pd.read_feather(self._exported("pyfolio_positions.feather")).set_index("date")
        from .evaluation import exports

        return returns, positions, exports.transactions(self.data)

    def _exported(self, name: str) -> Path:
        if not (self.folder / name).is_file():
            self.evaluate()
        return self.folder / name


def load(folder: str | Path) -> Run:
    """A finished run folder (made by 03 or by `backtest`)."""
    folder = Path(folder)
    if not (folder / "run.json").is_file():
        raise BadInputError(f"{folder} is not a finished run archive (no run.json)")
    return Run(folder)


def _algorithm_file(function: Callable, results_dir: Path) -> Path:
    """A file recording a function's source, for the archive and the run's fingerprint."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        raise BadInputError(
            f"{getattr(function, '__name__', function)!r}: its source cannot be read, so the "
            "run could not be recorded; define it in a file or a notebook cell"
        ) from None
    name = getattr(function, "__name__", "algorithm")
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    path = results_dir / ".algorithms" / f"{name}-{digest}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(
            f"# The function passed to equity_backtest.api.backtest; it ran with the globals of\n"
            f"# the module or notebook that defined it (here only its source is kept).\n\n{source}"
        )
    return path


def backtest(
    params: Parameters | str | Path | None = None,
    algorithm: str | Path | Callable | None = None,
    *,
    run_dir: str | Path | None = None,
    progress: bool = False,
    parameters_file: str | Path = "parameters.py",
    **overrides,
) -> Run:
    """03: one backtest. `params`: a Parameters, a parameters file, or None (parameters.py);
    `overrides`: settings to change; `algorithm`: a file, or a function (view, params) -> weights.
    `parameters_file` is copied into the archive as the record of where the settings came from."""
    params = _params(params, overrides)
    function = algorithm if callable(algorithm) else None
    if function is not None:
        params = params.replace(algorithm=str(_algorithm_file(function, Path(params.results_dir))))
    elif algorithm is not None:
        params = params.replace(algorithm=str(algorithm))
    with cli.trading_stores(params) as local:
        outcome = runner.run_single(
            local,
            Path(parameters_file),
            Path(run_dir) if run_dir else None,
            progress=progress,
            compute_weights=function,
        )
    return Run(outcome.run_dir)


@dataclasses.dataclass
class TrialSet:
    """A finished sweep: its folder, trials.csv as `table`, and each trial as a Run."""

    folder: Path

    @property
    def table(self) -> pd.DataFrame:
        return pd.read_csv(self.folder / "trials.csv")

    @property
    def runs(self) -> dict[str, Run]:
        from .evaluation.trial_set import runs_in

        return {p.name: Run(p) for p in runs_in(self.folder)}

    def overfitting(self, blocks: int = 16) -> dict:
        """04 on the set: PBO, degradation, probability of loss, deflated Sharpe."""
        from .evaluation.trial_set import evaluate_set, runs_in

        return evaluate_set(runs_in(self.folder), self.folder, blocks)


def trials(
    params: Parameters | str | Path | None = None,
    algorithms: Sequence[str | Path] = (),
    grid: Mapping[str, Sequence] | None = None,
    *,
    jobs: int = 0,
    parameters_file: str | Path = "parameters.py",
    **overrides,
) -> TrialSet:
    """03's sweep: every algorithm file x every combination of `grid` values, each in its own
    process and archive (as 03 --grid/--algorithm). The trials read `parameters_file` with the
    overrides given here and the grid's values."""
    params = _params(params, overrides)
    grid_args = [f"{k}={','.join(str(v) for v in values)}" for k, values in (grid or {}).items()]
    plan = trial_runs.plan(params, [str(a) for a in algorithms], None, grid_args)
    script = REPO / "03_trade.py"
    if not script.is_file():
        raise BadInputError(f"{script} not found: trials run 03_trade.py in their own processes")
    extra = {k: v for k, v in dataclasses.asdict(params).items() if k in overrides}
    plan = [
        dataclasses.replace(t, overrides={**{k: str(v) for k, v in extra.items()}, **t.overrides})
        for t in plan
    ]
    folder, _ = trial_runs.run_all(plan, params, str(parameters_file), script, jobs)
    return TrialSet(folder)


__all__ = ["Run", "TrialSet", "backtest", "build", "load", "parameters", "query", "trials"]


def live_report(params: Parameters | str | Path | None = None, **overrides) -> Path:
    """04 on a live account, under the account's reports/: its own books as a run archive with
    the usual tear sheet over the live period (live/), the same algorithm backtested over the
    account's days (backtest/, also with its tear sheet), and live against backtest day by day
    (live_vs_backtest.csv) with the tracking difference and error and each one's return metrics
    (live_vs_backtest.json), the account's own page (live.html: equity and drawdown against the
    backtest, the metrics, the orders); for a broker that reports fills, each order's
    implementation shortfall (implementation_shortfall.csv)."""
    import datetime as dt

    from .data.panel import load_panel
    from .evaluation import live_page
    from .evaluation.returns import bar_returns
    from .infra.storage import atomic_write_text
    from .run import live, live_archive

    params = _params(params, overrides)
    folder = live.account_folder(params)
    records = live.Journal(folder / live.JOURNAL).records
    if any(r["kind"] == "plan" for r in records):  # the investor's: plans and fills, no bars
        return _investor_report(folder, records)
    days = live.journaled_days(folder)
    # the backtest runs on what the account trades with, whatever parameters.py says now
    params = _params(params, live.traded_with(params, folder))
    first, last = days["date"].iloc[0].date(), days["date"].iloc[-1].date()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = folder / "reports" / f"{last:%Y-%m-%d}__{stamp}"
    run = backtest(params.replace(start=first, end=last), run_dir=out / "backtest")
    run.evaluate()
    # the account's own books as a run archive: the usual tear sheet over the live period
    panel = load_panel(params.replace(start=first, end=last))
    Run(live_archive.write(folder, run.folder, out / "live", panel)).evaluate()
    runtime = pd.read_csv(run.folder / "runtime_log.csv", parse_dates=["date"])
    table, summary = live.live_against_backtest(days, runtime)
    summary["backtest"] = str(run.folder)
    orders = live.shortfalls(folder)
    start = float(live.Journal(folder / live.JOURNAL).records[0].get("starting_cash", 0) or 0)
    ours = bar_returns(table.set_index("date")["value_live"], start or params.starting_cash)
    theirs = bar_returns(table.set_index("date")["value_backtest"], run.info["starting_value"])
    summary["metrics"] = live_page.figures(ours, theirs)
    atomic_write_text(out / "live.html", live_page.page(folder.name, ours, theirs, summary, orders))
    if len(orders):  # the file broker: what placing the orders cost against their decisions
        orders.to_csv(out / "implementation_shortfall.csv", index=False)
        summary["implementation_shortfall"] = {
            "orders": len(orders),
            "total": float(orders["shortfall"].sum()),
            "unfilled_orders": int((orders["unfilled"].abs() > 1e-9).sum()),
        }
    table.to_csv(out / "live_vs_backtest.csv", index=False, date_format="%Y-%m-%d")
    atomic_write_text(out / "live_vs_backtest.json", json.dumps(summary, indent=2) + "\n")
    return out


def _investor_report(folder: Path, records: list[dict]) -> Path:
    """04 --live on an investor's account: each planned order against its fill."""
    import datetime as dt

    from .infra.storage import atomic_write_text
    from .run import live

    plans = [r for r in records if r["kind"] == "plan"]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = folder / "reports" / f"{plans[-1]['date']}__{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    orders = live.shortfalls(folder)
    orders.to_csv(out / "implementation_shortfall.csv", index=False)
    summary = {
        "plans": len(plans),
        "first_plan": plans[0]["date"],
        "last_plan": plans[-1]["date"],
        "plans_with_fills": len({r["plan_date"] for r in records if r["kind"] == "fills"}),
        "orders_filled_or_not": len(orders),
        "implementation_shortfall": float(orders["shortfall"].sum()) if len(orders) else 0.0,
    }
    atomic_write_text(out / "investor_record.json", json.dumps(summary, indent=2) + "\n")
    return out
