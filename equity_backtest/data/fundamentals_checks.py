"""What the quality report reads of the fundamentals table, by source, kept beside it in a dataset
version (fundamentals.checks/<source>/<frame>.feather): each ticker's first public date, the
shares outstanding reported (for the market-cap units check) and the row count. A build whose new
logs leave the fundamentals as they were shares the table and this summary with the previous
version and never reads the table (at CRSP size, 8 million rows that took seconds to load)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from . import market_checks

Summary = dict[str, pd.DataFrame]  # frame name -> frame
FRAMES = ("first_public", "shares", "rows")


def shares_outstanding(fund: pd.DataFrame) -> pd.DataFrame:
    """The shares outstanding a source reported, in table order: ticker (text), period_end,
    value."""
    rows = fund[(fund["metric"] == "shares_outstanding").to_numpy()]  # (no text copy)
    return pd.DataFrame(
        {
            "ticker": rows["ticker"].astype(str).to_numpy(),
            "period_end": rows["period_end"].to_numpy(),
            "value": rows["value"].to_numpy(dtype=float),
        }
    )


def summarise(fund: pd.DataFrame) -> Summary:
    """One source's fundamentals rows, summarised."""
    first = fund["announcement_date"].fillna(fund["period_end"])
    public = first.groupby(fund["ticker"], observed=True).min()  # (on codes if encoded)
    return {
        "first_public": pd.DataFrame(
            {"ticker": public.index.astype(str).to_numpy(), "first_public": public.to_numpy()}
        ),
        "shares": shares_outstanding(fund),
        "rows": pd.DataFrame({"rows": [len(fund)]}),
    }


def by_source(fund: pd.DataFrame) -> dict[str, Summary]:
    """The summaries of a whole fundamentals table, by source."""
    sources = fund["source"]
    if isinstance(sources.dtype, pd.CategoricalDtype):
        names = sources.cat.categories[np.unique(sources.cat.codes[sources.cat.codes >= 0])]
    else:
        names = pd.unique(sources.dropna())
    return {
        str(s): summarise(fund if len(names) == 1 else fund[(sources == s).to_numpy()])
        for s in names
    }


def first_public(summary: Summary) -> pd.Series:
    """Each ticker's first public date (NaT: never dated), indexed by ticker."""
    frame = summary["first_public"]
    return pd.Series(frame["first_public"].to_numpy(), index=pd.Index(frame["ticker"]))


def rows(summary: Summary) -> int:
    return int(summary["rows"]["rows"].iloc[0])


def nothing() -> Summary:
    """The summary of a source without fundamentals."""
    return summarise(
        pd.DataFrame(
            {
                "ticker": pd.Series(dtype=object),
                "period_end": pd.Series(dtype="datetime64[ns]"),
                "announcement_date": pd.Series(dtype="datetime64[ns]"),
                "metric": pd.Series(dtype=object),
                "value": pd.Series(dtype=float),
            }
        )
    )


def save(summaries: dict[str, Summary], folder: Path) -> None:
    market_checks.save(summaries, folder)


def load(folder: Path) -> dict[str, Summary] | None:
    """The summaries a version keeps (None where it has none whole: a version built before
    they were kept, or a damaged one; the table is then read and summarised again)."""
    try:
        found = market_checks.load(folder)
    except (OSError, ValueError, pa.ArrowException):
        return None
    if any(set(s) != set(FRAMES) for s in found.values()):
        return None
    return found
