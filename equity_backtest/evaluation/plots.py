"""Tear-sheet figures (V4), rendered headless with matplotlib and returned as PNG bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .metrics import drawdown  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def equity_and_drawdown(returns: pd.Series, benchmark: pd.Series) -> bytes:
    """Cumulative return of the portfolio and the benchmark, and the portfolio's underwater curve."""
    fig, (ax1, ax2) = plt.subplots(
        2, 1, figsize=(10, 6.5), sharex=True, gridspec_kw={"height_ratios": [2.2, 1]}
    )
    ax1.plot(returns.index, np.cumprod(1 + returns.to_numpy()) - 1, label="portfolio", lw=1.4)
    ax1.plot(
        benchmark.index,
        np.cumprod(1 + benchmark.to_numpy()) - 1,
        label="index (benchmark)",
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
    return _png(fig)
