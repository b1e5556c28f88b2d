"""Factor research (S3): does a signal predict returns before any portfolio is built?

    python -m equity_backtest.research --signal strategies/momentum_12_1.py --horizons 21 63
    python -m equity_backtest.research --field market_cap --quantiles 5

At decision days spaced `horizon` trading days apart (so windows never overlap), the signal is
read from the point-in-time view for the index members (a strategy's `score(view, params)`, or a
named market field or fundamental metric) and compared with each member's forward total return
over the next `horizon` days (splits, dividends and delisting values included):
  rank IC   Spearman correlation of signal and forward return across members, per window;
            reported as mean, standard deviation, t-stat with Newey-West standard errors (lag
            floor(4 (n/100)^(2/9)): neighbouring windows of a persistent signal are not
            independent; the naive mean / (sd / sqrt(n)) beside it), IC IR = mean / sd,
            hit rate (share of windows with IC > 0); fewer than 12 windows are flagged unreliable;
  quantiles members split into Q groups by signal each window; mean forward return per group,
            and the top-minus-bottom spread with its t-stat;
  turnover  share of the top group replaced from one window to the next.
Writes factor_report.json and a self-contained factor_report.html.
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
from ..evaluation import inference
from ..evaluation import page as report_page
from ..infra.storage import atomic_write_bytes, atomic_write_text

MIN_WINDOWS = 12


@dataclasses.dataclass
class Signal:
    name: str
    compute: object  # callable(view, params) -> Series

    @classmethod
    def from_strategy(cls, path: str | Path) -> Signal:
        module = load_module(path)
        if not hasattr(module, "score"):
            raise BadInputError(f"{path} has no score(view, params) function to study")
        return cls(Path(path).stem, module.score)

    @classmethod
    def from_field(cls, field: str) -> Signal:
        def compute(view, params):
            market = view.market(view.universe)
            if field in market.columns:
                return market[field]
            values = view.fundamentals([field], tickers=view.universe)[field]
            if values.isna().all():
                raise BadInputError(
                    f"--field {field}: neither a market field nor a fundamental metric with data"
                )
            return values

        return cls(field, compute)


def forward_returns(panel: Panel, t: int, horizon: int) -> np.ndarray:
    """Total return of holding each ticker from the close of t to the close of t + horizon (a
    delisting pays its value, then the position is cash)."""
    window = np.nan_to_num(panel.total_return[t + 1 : t + horizon + 1])
    return np.prod(1.0 + window, axis=0) - 1.0


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if np.std(ra) == 0 or np.std(rb) == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _t(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    if len(x) < 2 or x.std(ddof=1) == 0:
        return float("nan")
    return float(x.mean() / (x.std(ddof=1) / math.sqrt(len(x))))


def study(
    panel: Panel, params: Parameters, signal: Signal, horizon: int, quantiles: int = 5
) -> dict:
    """IC, quantile returns and turnover of a signal at one horizon over the backtest window."""
    t0, t1 = heartbeat_range(panel.dates, params.start, params.end)
    days = list(range(t0, t1 - horizon + 1, horizon))
    rows, quantile_rows, tops = [], [], []
    for t in days:
        view = View(panel, t, np.zeros(len(panel.tickers)), 0.0, params.lookback_days)
        s = signal.compute(view, params)
        s = s.dropna() if s is not None else pd.Series(dtype=float)
        if len(s) < 2 * quantiles:
            continue
        fwd = forward_returns(panel, t, horizon)[panel.labels.get_indexer(s.index)]
        x = s.to_numpy(dtype=float)
        ok = np.isfinite(x) & np.isfinite(fwd)
        x, y, names = x[ok], fwd[ok], s.index[ok]
        rows.append({"date": panel.dates[t], "ic": _spearman(x, y), "members": int(ok.sum())})
        groups = pd.qcut(pd.Series(x).rank(method="first"), quantiles, labels=False).to_numpy()
        quantile_rows.append([float(y[groups == q].mean()) for q in range(quantiles)])
        tops.append(set(names[groups == quantiles - 1]))
    if not rows:
        raise BadInputError(
            f"signal {signal.name} gave too few values to study at horizon {horizon}"
        )
    ic = np.array([r["ic"] for r in rows])
    q = np.array(quantile_rows)
    spread = q[:, -1] - q[:, 0]
    turnover = [1 - len(a & b) / len(b) for a, b in zip(tops[:-1], tops[1:], strict=True) if b]
    finite = ic[np.isfinite(ic)]
    ic_nw, spread_nw = inference.series_mean(ic), inference.series_mean(spread)
    return {
        "horizon_days": horizon,
        "windows": len(rows),
        "reliable": len(rows) >= MIN_WINDOWS,
        "mean_ic": float(finite.mean()) if len(finite) else float("nan"),
        "ic_std": float(finite.std(ddof=1)) if len(finite) > 1 else float("nan"),
        # Newey-West: a persistent signal's ICs of neighbouring windows are not independent
        "ic_t_stat": ic_nw["t_stat"],
        "ic_t_stat_naive": _t(ic),
        "ic_ci95": ic_nw["ci95"],
        "newey_west_lags": ic_nw["lags"],
        "ic_ir": float(finite.mean() / finite.std(ddof=1))
        if len(finite) > 1 and finite.std(ddof=1) > 0
        else float("nan"),
        "hit_rate": float((finite > 0).mean()) if len(finite) else float("nan"),
        "significant": bool(len(rows) >= MIN_WINDOWS and abs(ic_nw["t_stat"]) > 2),
        "quantile_mean_returns": [float(v) for v in np.nanmean(q, axis=0)],
        "top_minus_bottom": float(np.nanmean(spread)),
        "top_minus_bottom_t_stat": spread_nw["t_stat"],
        "top_minus_bottom_t_stat_naive": _t(spread),
        "top_quantile_turnover": float(np.mean(turnover)) if turnover else float("nan"),
        "ic_series": [{"date": f"{r['date']:%Y-%m-%d}", "ic": r["ic"]} for r in rows],
    }


def report(signal: Signal, results: list[dict], out: Path) -> Path:
    """factor_report.json and factor_report.html (plots embedded)."""
    from ..evaluation.plots import plt, png  # headless matplotlib

    out.mkdir(parents=True, exist_ok=True)
    clean = json.loads(
        json.dumps({"signal": signal.name, "horizons": results}, default=lambda v: None),
        parse_constant=lambda c: None,
    )
    atomic_write_text(
        out / "factor_report.json", json.dumps(clean, indent=1, allow_nan=False) + "\n"
    )
    figures = []
    for r in results:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
        dates = pd.to_datetime([x["date"] for x in r["ic_series"]])
        ics = np.array([x["ic"] for x in r["ic_series"]], dtype=float)
        ax1.bar(
            dates,
            ics,
            width=max(r["horizon_days"], 5),
            color=np.where(ics > 0, "tab:green", "tab:red"),
        )
        ax1.plot(
            dates,
            np.nancumsum(ics) / np.arange(1, len(ics) + 1),
            color="black",
            lw=1,
            label="running mean",
        )
        ax1.set_title(f"Rank IC per window, {r['horizon_days']}-day horizon")
        ax1.legend()
        ax2.bar(range(1, len(r["quantile_mean_returns"]) + 1), r["quantile_mean_returns"])
        ax2.set_title("Mean forward return by signal quantile (1 = lowest)")
        for ax in (ax1, ax2):
            ax.grid(alpha=0.3)
        figures.append(png(fig))
    rows = "".join(
        f"<tr><td>{r['horizon_days']}</td><td>{r['windows']}</td><td>{'yes' if r['reliable'] else 'no (few windows)'}</td>"
        f"<td>{r['mean_ic']:.4f}</td><td>{r['ic_t_stat']:.2f}</td><td>{r['ic_ir']:.3f}</td><td>{r['hit_rate']:.1%}</td>"
        f"<td>{r['top_minus_bottom']:.2%}</td><td>{r['top_minus_bottom_t_stat']:.2f}</td><td>{r['top_quantile_turnover']:.1%}</td></tr>"
        for r in results
    )
    images = "".join(report_page.image("IC", f) for f in figures)
    html_page = report_page.page(
        f"Factor report: {signal.name}",
        f"""<h1>Factor report: {html.escape(signal.name)}</h1>
<table><tr><th>horizon (days)</th><th>windows</th><th>reliable</th><th>mean IC</th><th>t-stat</th><th>IC IR</th>
<th>hit rate</th><th>top - bottom</th><th>t-stat</th><th>top turnover</th></tr>{rows}</table>
{images}""",
    )
    atomic_write_bytes(out / "factor_report.html", html_page.encode("utf-8"))
    return out / "factor_report.html"


def main() -> int:
    parser = cli.parser(__doc__, prog="python -m equity_backtest.research")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--signal", metavar="PATH", help="a strategy file with score(view, params)")
    group.add_argument("--field", help="a market field (e.g. market_cap) or fundamental metric")
    parser.add_argument(
        "--horizons", type=int, nargs="+", default=[21, 63], help="forward horizons in trading days"
    )
    parser.add_argument("--quantiles", type=int, default=5)
    parser.add_argument("--out", help="output folder (default: results/factor_<signal>)")
    args = parser.parse_args()
    cli.setup_logging(args)
    params = cli.load(args)
    signal = Signal.from_strategy(args.signal) if args.signal else Signal.from_field(args.field)
    panel = load_panel(params)
    results = [study(panel, params, signal, h, args.quantiles) for h in args.horizons]
    for r in results:
        cli.log.info(
            "horizon %3d days: mean IC %.4f (t %.2f, IR %.3f, hit %.0f%%, %d windows%s); top-bottom %.2f%%",
            r["horizon_days"],
            r["mean_ic"],
            r["ic_t_stat"],
            r["ic_ir"],
            100 * r["hit_rate"],
            r["windows"],
            "" if r["reliable"] else ", UNRELIABLE: fewer than 12",
            100 * r["top_minus_bottom"],
        )
    out = Path(args.out) if args.out else Path(params.results_dir) / f"factor_{signal.name}"
    print(report(signal, results, out))
    return 0


if __name__ == "__main__":
    cli.run(main)
