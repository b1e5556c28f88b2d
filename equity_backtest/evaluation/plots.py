"""Tear-sheet figures (V4), rendered headless with matplotlib and returned as PNG bytes, or as
matplotlib Figures (`figure`) for a notebook to show inline (api.Run.plot)."""

from __future__ import annotations

import contextvars
import io
import sys

import matplotlib

if "ipykernel" not in sys.modules:  # scripts render headless; a notebook keeps its own backend
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .metrics import drawdown  # noqa: E402

_AS_FIGURE = contextvars.ContextVar("as_figure", default=False)


def figure(chart, *args, **kwargs):
    """The matplotlib Figure that a chart function of this module draws, not its PNG."""
    token = _AS_FIGURE.set(True)
    try:
        return chart(*args, **kwargs)
    finally:
        _AS_FIGURE.reset(token)


def _out(fig):
    if _AS_FIGURE.get():
        plt.close(fig)  # out of pyplot's list, so a notebook shows it once, as the cell's value
        return fig
    return png(fig)


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def equity_and_drawdown(returns: pd.Series, benchmark: pd.Series, label: str = "index") -> bytes:
    """Cumulative return of the portfolio and the benchmark, and the portfolio's underwater curve."""
    fig, (ax1, ax2) = plt.subplots(
        2, 1, figsize=(10, 6.5), sharex=True, gridspec_kw={"height_ratios": [2.2, 1]}
    )
    ax1.plot(returns.index, np.cumprod(1 + returns.to_numpy()) - 1, label="portfolio", lw=1.4)
    ax1.plot(
        benchmark.index,
        np.cumprod(1 + benchmark.to_numpy()) - 1,
        label=f"{label} (benchmark)",
        lw=1.1,
        alpha=0.8,
    )
    ax1.set_ylabel("cumulative return")
    ax1.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax1.legend(loc="upper left")
    ax1.grid(alpha=0.3)
    dd = drawdown(returns.to_numpy())
    ax2.fill_between(returns.index, dd, 0, color="tab:red", alpha=0.4)
    ax2.set_ylabel("drawdown")
    ax2.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax2.grid(alpha=0.3)
    fig.suptitle("Equity curve and drawdown")
    return _out(fig)


def _pct_axis(ax) -> None:
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.grid(alpha=0.3)


def log_wealth(returns: pd.Series, benchmark: pd.Series, label: str = "index") -> bytes:
    """Growth of 1 on a log scale, portfolio and benchmark (`label`)."""
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.semilogy(returns.index, np.cumprod(1 + returns.to_numpy()), label="portfolio", lw=1.4)
    ax.semilogy(
        benchmark.index, np.cumprod(1 + benchmark.to_numpy()), label=label, lw=1.1, alpha=0.8
    )
    ax.set_ylabel("growth of 1 (log scale)")
    # plain numbers (0.5, 1, 2), never 2x10^0; inside one decade the minor ticks are labelled
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.3g}")
    ax.yaxis.set_major_formatter(plain)
    wealth = np.r_[np.cumprod(1 + returns.to_numpy()), np.cumprod(1 + benchmark.to_numpy())]
    wealth = wealth[np.isfinite(wealth) & (wealth > 0)]
    narrow = len(wealth) and np.log10(wealth.max() / wealth.min()) < 1.0
    ax.yaxis.set_minor_formatter(plain if narrow else matplotlib.ticker.NullFormatter())
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left")
    ax.set_title("Cumulative return, log scale")
    return _out(fig)


def monthly_heatmap(table: pd.DataFrame) -> bytes:
    """Monthly returns, years by months, red for losses and green for gains."""
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(table) + 1.2))
    data = table.to_numpy(dtype=float)
    limit = np.nanmax(np.abs(data)) if np.isfinite(data).any() else 1.0
    ax.imshow(data, cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(
        range(12),
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    )
    ax.set_yticks(range(len(table)), [str(y) for y in table.index])
    for (i, j), v in np.ndenumerate(data):
        if np.isfinite(v):
            ax.text(j, i, f"{v * 100:.1f}", ha="center", va="center", fontsize=7)
    ax.set_title("Monthly returns (%)")
    return _out(fig)


def yearly_bars(table: pd.DataFrame, label: str = "index") -> bytes:
    """Calendar-year returns of the portfolio and the benchmark (`label`) side by side."""
    fig, ax = plt.subplots(figsize=(10, 3.5))
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["portfolio"], width=0.4, label="portfolio")
    ax.bar(x + 0.2, table["index"], width=0.4, label=label, alpha=0.8)
    ax.set_xticks(x, [str(y) for y in table.index], rotation=45)
    ax.axhline(0, color="black", lw=0.8)
    _pct_axis(ax)
    ax.legend()
    ax.set_title("Yearly returns")
    return _out(fig)


def rolling(stats: pd.DataFrame) -> bytes:
    """Rolling 6- and 12-month Sharpe ratio, annualised volatility and beta."""
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    for label in ("6m", "12m"):
        ax1.plot(stats.index, stats[f"sharpe_{label}"], label=f"Sharpe {label}", lw=1)
        ax2.plot(stats.index, stats[f"volatility_{label}"], label=f"volatility {label}", lw=1)
        ax3.plot(stats.index, stats[f"beta_{label}"], label=f"beta {label}", lw=1)
    _pct_axis(ax2)
    for ax, title, line in (
        (ax1, "Rolling Sharpe ratio", 0),
        (ax2, "Rolling volatility (annualised)", None),
        (ax3, "Rolling beta to the benchmark", 1),
    ):
        if line is not None:
            ax.axhline(line, color="black", lw=0.8)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
        ax.set_title(title)
    return _out(fig)


def active_return(returns: pd.Series, benchmark: pd.Series) -> bytes:
    """Cumulative active return: growth of the portfolio over the benchmark's (a rising line
    means it is pulling ahead), and its drawdown."""
    relative = np.cumprod(1 + returns.to_numpy()) / np.cumprod(1 + benchmark.to_numpy()) - 1
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.plot(returns.index, relative, lw=1.2, color="tab:blue")
    ax.fill_between(returns.index, relative, 0, where=relative < 0, color="tab:red", alpha=0.25)
    ax.fill_between(returns.index, relative, 0, where=relative >= 0, color="tab:green", alpha=0.2)
    ax.axhline(0, color="black", lw=0.8)
    _pct_axis(ax)
    ax.set_title("Cumulative return relative to the benchmark")
    return _out(fig)


def return_histogram(returns: pd.Series, frequency: str) -> bytes:
    """Distribution of the per-bar returns, with the mean and the 5% quantile (historical VaR)."""
    r = returns.to_numpy()[1:] if len(returns) > 1 else returns.to_numpy()
    fig, ax = plt.subplots(figsize=(10, 3.5))
    if len(r):
        ax.hist(r, bins=min(80, max(10, len(r) // 10)), color="tab:blue", alpha=0.75)
        ax.axvline(float(np.mean(r)), color="black", lw=1, label=f"mean {np.mean(r):.2%}")
        var = float(np.percentile(r, 5))
        ax.axvline(var, color="tab:red", lw=1, ls="--", label=f"5% quantile {var:.2%}")
        ax.legend(loc="upper left")
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.grid(alpha=0.3)
    ax.set_title(f"Distribution of {frequency} returns")
    return _out(fig)


def exposure_and_turnover(exposure: pd.DataFrame, turnover: pd.Series) -> bytes:
    """Gross and net exposure, number of holdings, and daily turnover."""
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True)
    ax1.plot(exposure.index, exposure["gross"], label="gross", lw=1)
    ax1.plot(exposure.index, exposure["net"], label="net", lw=1)
    _pct_axis(ax1)
    ax1.legend(loc="lower left")
    ax1.set_title("Exposure (fraction of equity)")
    ax2.plot(exposure.index, exposure["holdings"], lw=1, color="tab:green")
    ax2.grid(alpha=0.3)
    ax2.set_title("Number of holdings")
    ax3.plot(turnover.index, turnover, lw=0.8, color="tab:purple")
    _pct_axis(ax3)
    later = turnover.iloc[1:]  # day 1 buys the whole portfolio: a spike that flattens the rest
    if len(later) and np.isfinite(later.max()) and later.max() > 0:
        top = float(np.nanpercentile(later, 99.5)) * 1.2 or float(later.max())
        ax3.set_ylim(0, top)
        if turnover.iloc[0] > top:
            ax3.annotate(
                f"first day {turnover.iloc[0]:.0%} (off the scale)",
                xy=(0.01, 0.9),
                xycoords="axes fraction",
                fontsize=8,
            )
    ax3.set_title("Daily turnover (one-way)")
    return _out(fig)


def sector_weights(weights: pd.DataFrame) -> bytes:
    """Sector weights over time (month-end), stacked."""
    monthly = weights.groupby(weights.index.to_period("M")).last()
    fig, ax = plt.subplots(figsize=(10, 4))
    if not monthly.empty and len(monthly.columns):
        cmap = plt.get_cmap("tab20" if len(monthly.columns) > 10 else "tab10")
        ax.stackplot(
            monthly.index.to_timestamp(),
            monthly.T.to_numpy(),
            labels=list(monthly.columns),
            colors=[cmap(k % cmap.N) for k in range(len(monthly.columns))],  # one colour each
            alpha=0.85,
        )
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    _pct_axis(ax)
    ax.set_title("Sector weights")
    return _out(fig)


def overfitting(
    logits: np.ndarray,
    in_sample: np.ndarray,
    out_of_sample: np.ndarray,
    slope: float,
    intercept: float,
) -> bytes:
    """CSCV: the distribution of the in-sample winner's out-of-sample logit rank, and its
    out-of-sample against its in-sample Sharpe ratio across splits."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.hist(logits, bins=40, color="tab:blue", alpha=0.8)
    ax1.axvline(0, color="black", lw=1)
    ax1.set_title(
        "Logit of the winner's out-of-sample rank\n(left of 0: below the median; share = PBO)"
    )
    ax2.scatter(in_sample, out_of_sample, s=4, alpha=0.3)
    if np.isfinite(slope):
        xs = np.linspace(in_sample.min(), in_sample.max(), 2)
        ax2.plot(xs, intercept + slope * xs, color="tab:red", lw=1.5, label=f"slope {slope:.2f}")
        ax2.legend()
    ax2.axhline(0, color="black", lw=0.8)
    ax2.set_xlabel("in-sample Sharpe of the in-sample winner")
    ax2.set_ylabel("its out-of-sample Sharpe")
    ax2.set_title("Performance degradation")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    return _out(fig)


def concentration(positions: pd.DataFrame, top: pd.DataFrame, shown: int = 5) -> bytes:
    """How concentrated the portfolio was: the weights of the largest holdings (by mean weight)
    over time, and the effective number of holdings, 1 / sum of squared weights."""
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    if len(positions):
        weights = positions.pivot_table(
            index="date", columns="ticker", values="weight", aggfunc="sum", observed=True
        ).fillna(0.0)
        weights.index = pd.DatetimeIndex(weights.index)
        names = [
            t for t in top["ticker"].astype(str).head(shown) if t in weights.columns.astype(str)
        ]
        cols = {str(c): c for c in weights.columns}
        for name in names:
            ax1.plot(weights.index, weights[cols[name]], lw=1.1, label=name)
        effective = 1.0 / (weights.pow(2).sum(axis=1)).replace(0, np.nan)
        ax2.plot(effective.index, effective, color="tab:gray", lw=1.2)
        if names:
            ax1.legend(loc="upper left", fontsize=8, ncol=len(names))
    _pct_axis(ax1)
    ax1.set_ylabel("weight")
    ax1.set_title(f"The {shown} largest holdings' weights, and the effective number of holdings")
    ax2.set_ylabel("1 / sum of w²")
    ax2.grid(alpha=0.3)
    return _out(fig)
