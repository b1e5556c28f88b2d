"""The per-ticker checks of the quality report (D7) on market rows, a part at a time.

Each year part of a dataset (or a whole table, as one part) is summarised alone: the rows it
flags, each ticker's first and last row in it (its edges), its runs of zero volume that touch an
edge, each ticker's span, its (month, ticker) pairs and its days. The summaries of all parts
combine into what one pass over the whole table gives: the checks that look across a part's
edge (a spike that reverts, a split-like move, a run of zero volume) are finished from the
edges, which hold each ticker's neighbour rows in the parts before and after. A build then
summarises only the parts it wrote, and keeps each summary beside its part (`save`, `load`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather

ZERO_VOLUME_RUN = 10
# no listed share trades above this in any currency; the panel treats such prices as missing
MAX_PLAUSIBLE_PRICE = 1e9
SPIKE = 20.0
SPLIT_RATIOS = (2.0, 3.0, 4.0, 5.0, 10.0, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 10)
FLAGGING = (
    "non_positive_prices",
    "implausible_prices",
    "zero_volume_runs",
    "unexplained_split_like_jumps",
)
PRICES = ("open", "high", "low", "close")
EXAMPLES = 20  # listed per check; counts are always complete
_BLOCK_ROWS = 1 << 20  # market rows checked at a time, so memory stays flat at any table size

Summary = dict[str, pd.DataFrame]  # one part's summary for one source


def by_ticker(mk: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Market rows ordered by ticker then day, with an integer code per row (equal codes: one
    ticker, codes in ticker order) and the ticker names of the codes. A built table is in that
    order with tickers dictionary-encoded already: then nothing is sorted or hashed again."""
    tick = mk["ticker"]
    if isinstance(tick.dtype, pd.CategoricalDtype) and not tick.isna().any():
        names = np.asarray(tick.cat.categories.astype(str), dtype=object)
        codes = tick.cat.codes.to_numpy()
        names_sorted = all(a < b for a, b in zip(names[:-1], names[1:], strict=True))
        if names_sorted and _by_ticker_and_day(codes, mk["date"].to_numpy()):
            return mk, codes, names
    mk = mk.assign(ticker=tick.astype(str)).sort_values(["ticker", "date"], kind="stable")
    codes, names = pd.factorize(mk["ticker"], sort=True)
    return mk, codes.astype(np.int64), np.asarray(names, dtype=object)


def _by_ticker_and_day(codes: np.ndarray, days: np.ndarray) -> bool:
    """Whether rows go by ticker code, and by day within a ticker (block by block)."""
    for start in range(0, max(len(codes) - 1, 0), _BLOCK_ROWS):
        c, d = codes[start : start + _BLOCK_ROWS + 1], days[start : start + _BLOCK_ROWS + 1]
        same = c[1:] == c[:-1]
        if (c[1:] < c[:-1]).any() or (d[1:][same] < d[:-1][same]).any():
            return False
    return True


def _ticker_blocks(codes: np.ndarray):
    """Slices of about _BLOCK_ROWS rows that begin and end where a ticker does (codes sorted):
    every check looks at one ticker's rows only, so block by block gives what one pass gives."""
    start = 0
    while start < len(codes):
        end = min(start + _BLOCK_ROWS, len(codes))
        if end < len(codes):
            end = int(np.searchsorted(codes, codes[end - 1], side="right"))
        yield slice(start, end)
        start = end


def distinct_days(days: np.ndarray) -> pd.DatetimeIndex:
    """The distinct days of millions of rows, by counting (no sort of the rows)."""
    if not len(days):
        return pd.DatetimeIndex(days)
    ns = days.astype("datetime64[ns]").astype(np.int64)
    whole = ns % 86_400_000_000_000 == 0
    if np.isnat(days).any() or not whole.all():
        return pd.DatetimeIndex(np.unique(days))
    number = ns // 86_400_000_000_000
    low = number.min()
    seen = np.flatnonzero(np.bincount(number - low)) + low
    return pd.DatetimeIndex((seen * 86_400_000_000_000).astype("datetime64[ns]"))


def summarise(mk: pd.DataFrame) -> Summary:
    """One part's market rows (of one source) summarised for combine(): rows flagged on the
    part's own evidence, candidates for split-like moves, and what the checks across its edges
    need. A row at a ticker's edge is judged for spikes and moves only in combine()."""
    mk, codes, names = by_ticker(mk)
    price_cols = [c for c in PRICES if c in mk]
    pieces: dict[str, list[pd.DataFrame]] = {}
    for rows in _ticker_blocks(codes):
        for key, frame in _block(mk.iloc[rows], codes[rows], names, price_cols).items():
            pieces.setdefault(key, []).append(frame)
    if not pieces:
        return _empty_summary(mk, price_cols)
    summary = {key: pd.concat(frames, ignore_index=True) for key, frames in pieces.items()}
    return {**summary, **_month_ends(mk, names, codes, summary["days"]["date"].to_numpy())}


def _month_ends(
    mk: pd.DataFrame, names: np.ndarray, codes: np.ndarray, days: np.ndarray
) -> Summary:
    """The rows of each month's last trading day (where the units check compares market caps
    with shares: period ends are mostly month ends), and whether any row has a market cap."""
    month = days.astype("datetime64[M]")
    ends = days[np.r_[month[1:] != month[:-1], True]] if len(days) else days
    at = np.flatnonzero(np.isin(mk["date"].to_numpy(), ends))
    caps = (
        mk["market_cap"].to_numpy(dtype=float) if "market_cap" in mk else np.full(len(mk), np.nan)
    )
    return {
        "month_ends": pd.DataFrame(
            {
                "ticker": names[codes[at]],
                "date": mk["date"].to_numpy()[at],
                "close": mk["close"].to_numpy(dtype=float)[at],
                "market_cap": caps[at],
            }
        ),  # fmt: skip
        "month_end_days": pd.DataFrame({"date": ends}),
        "caps": pd.DataFrame({"any": [bool(np.isfinite(caps).any())]}),
    }


def _empty_summary(mk: pd.DataFrame, price_cols: list[str]) -> Summary:
    empty = mk.iloc[:0].assign(ticker=pd.Series(dtype=object))
    none, codes = np.array([], dtype=object), np.zeros(0, np.int64)
    summary = _block(empty, codes, none, price_cols)
    return {**summary, **_month_ends(empty, none, codes, empty["date"].to_numpy())}


def nothing() -> Summary:
    """The summary of no rows: a source with lists but no prices."""
    from .vocabulary import TABLES

    columns = {**TABLES["market"].columns, "log_ts": "int64"}
    return summarise(pd.DataFrame({c: pd.Series(dtype=d) for c, d in columns.items()}))


def _block(
    blk: pd.DataFrame, code: np.ndarray, names: np.ndarray, price_cols: list[str]
) -> Summary:
    ticker = names[code] if len(code) else np.array([], dtype=object)
    first = np.diff(code, prepend=-1) != 0  # a ticker's first row (a ticker's rows are
    last = np.diff(code, append=-1) != 0  # together, by day), and its last
    days = blk["date"].to_numpy()
    prices = [blk[c].to_numpy() for c in price_cols] or [np.full(len(blk), np.nan)]
    shown = pd.DataFrame({"ticker": ticker, "date": days, **{c: blk[c].to_numpy() for c in price_cols}})  # fmt: skip
    nonpositive = np.logical_or.reduce([p <= 0 for p in prices])
    close = blk["close"].to_numpy()
    prev_close, next_close = np.full(len(close), np.nan), np.full(len(close), np.nan)
    prev_close[1:], next_close[:-1] = close[:-1], close[1:]
    prev_close[first], next_close[last] = np.nan, np.nan
    absurd = np.logical_or.reduce([p > MAX_PLAUSIBLE_PRICE for p in prices])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = close / prev_close
        near = np.zeros(len(blk), dtype=bool)
        for k in SPLIT_RATIOS:
            near |= np.abs(np.log(ratio) - np.log(1 / k)) < np.log(1.05)
    edge = first | last
    edges = shown[edge].assign(
        first=first[edge], last=last[edge], before=prev_close[edge], after=next_close[edge],
        absurd=absurd[edge],
    )  # fmt: skip

    zero = blk["volume"].eq(0).to_numpy()  # missing volume is unknown, not zero
    runs = _zero_runs(zero, first, last, ticker, days)
    open_ = (runs["at_first"] | runs["at_last"]).to_numpy()
    closed = runs[~open_]
    return {
        "non_positive_prices": shown[nonpositive].reset_index(drop=True),
        "implausible_prices": shown[absurd | _spikes(close, prev_close, next_close)].reset_index(
            drop=True
        ),  # fmt: skip
        "zero_volume_runs": closed[closed["days"] >= ZERO_VOLUME_RUN][
            ["ticker", "start", "end", "days"]
        ],  # fmt: skip
        "open_runs": runs[open_].reset_index(drop=True),
        "split_candidates": pd.DataFrame(
            {"ticker": ticker[near], "date": days[near], "close": close[near], "ratio": ratio[near]}
        ),
        "edges": edges.reset_index(drop=True),
        "spans": pd.DataFrame(
            {
                "ticker": ticker[first],
                "first_day": days[first],
                "last_day": days[last],
                "size": (np.flatnonzero(last) - np.flatnonzero(first) + 1).astype(np.int64),
            }
        ),  # fmt: skip
        "pairs": _pairs(ticker, days, first),
        "days": pd.DataFrame({"date": distinct_days(days).to_numpy()}),
    }


def _zero_runs(
    zero: np.ndarray, first: np.ndarray, last: np.ndarray, ticker: np.ndarray, days: np.ndarray
) -> pd.DataFrame:
    """Runs of consecutive zero-volume rows of one ticker: ticker, first and last day, rows, and
    whether the run holds the ticker's first or last row here (then it may go on next door)."""
    run_id = np.cumsum(first | (np.diff(zero.astype(np.int8), prepend=2) != 0))[zero]
    starts = np.flatnonzero(np.r_[True, run_id[1:] != run_id[:-1]]) if len(run_id) else run_id
    sizes = np.diff(np.r_[starts, len(run_id)])
    ends = starts + sizes - 1
    rows = np.flatnonzero(zero)

    def reach(flags: np.ndarray) -> np.ndarray:
        if not len(starts):
            return np.zeros(0, dtype=bool)
        return np.add.reduceat(flags[rows].astype(np.int64), starts) > 0

    return pd.DataFrame(
        {"ticker": ticker[rows[starts]], "start": days[rows[starts]], "end": days[rows[ends]],
         "days": sizes.astype(np.int64), "at_first": reach(first), "at_last": reach(last)}
    )  # fmt: skip


def _spikes(close: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """A close SPIKE times above or below both neighbours (a one-day spike that reverts)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        up = (close / before >= SPIKE) & (close / after >= SPIKE)
        down = (before / close >= SPIKE) & (after / close >= SPIKE)
    return up | down


def _pairs(ticker: np.ndarray, days: np.ndarray, first: np.ndarray) -> pd.DataFrame:
    """(month, ticker) pairs with prices, a month as its Period ordinal: a ticker's rows go by
    day, so a pair starts where the ticker or the month changes."""
    month = days.astype("datetime64[M]").astype(np.int64)
    starts = first | (np.diff(month, prepend=np.int64(-1)) != 0)
    return pd.DataFrame({"month": month[starts], "ticker": ticker[starts]})


def combine(parts: list[Summary], splits: set) -> dict:
    """The checks of the whole table from its parts' summaries: flagged rows (count and the
    first examples, in ticker then day order), each ticker's span (ticker order) and the
    distinct trading days (the (month, ticker) pairs are read part by part, quality._coverage).
    `splits`: the (ticker, day) pairs with a split recorded, which explain a split-like move."""

    def joined(key: str) -> pd.DataFrame:
        return pd.concat([p[key] for p in parts], ignore_index=True)

    edges = joined("edges").sort_values(["ticker", "date"], kind="stable", ignore_index=True)
    ticker = edges["ticker"].to_numpy()
    close = edges["close"].to_numpy(dtype=float)
    same_before = np.r_[False, ticker[1:] == ticker[:-1]]
    same_after = np.r_[ticker[:-1] == ticker[1:], False]
    across_before = np.where(same_before, np.r_[np.nan, close[:-1]], np.nan)  # the ticker's
    across_after = np.where(same_after, np.r_[close[1:], np.nan], np.nan)  # rows next door
    first, last = edges["first"].to_numpy(bool), edges["last"].to_numpy(bool)
    before = np.where(first, across_before, edges["before"].to_numpy(dtype=float))
    after = np.where(last, across_after, edges["after"].to_numpy(dtype=float))
    spiked = _spikes(close, before, after) & ~edges["absurd"].to_numpy(bool)
    shown = [c for c in edges.columns if c in ("ticker", "date", *PRICES)]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = close / across_before
        near = np.zeros(len(edges), dtype=bool)
        for k in SPLIT_RATIOS:
            near |= first & (np.abs(np.log(ratio) - np.log(1 / k)) < np.log(1.05))
    moves = pd.concat(
        [joined("split_candidates"),
         pd.DataFrame({"ticker": ticker[near], "date": edges["date"].to_numpy()[near],
                       "close": close[near], "ratio": ratio[near]})],
        ignore_index=True,
    ).sort_values(["ticker", "date"], kind="stable")  # fmt: skip
    explained = [(t, d) in splits for t, d in zip(moves["ticker"], moves["date"], strict=True)]
    after_date = np.where(same_after, np.r_[edges["date"].to_numpy()[1:], edges["date"].to_numpy()[:1]], np.datetime64("NaT"))  # fmt: skip
    flagged = {
        "non_positive_prices": _ordered(joined("non_positive_prices"), ["ticker", "date"]),
        "implausible_prices": _ordered(
            pd.concat([joined("implausible_prices"), edges[spiked][shown]], ignore_index=True),
            ["ticker", "date"],
        ),
        "zero_volume_runs": _ordered(
            pd.concat(
                [joined("zero_volume_runs"), _joined_runs(joined("open_runs"), edges, after_date)]
            ),  # fmt: skip
            ["ticker", "start"],
        ),
        "unexplained_split_like_jumps": moves[~np.array(explained, dtype=bool)][
            ["ticker", "date", "close", "ratio"]
        ],  # fmt: skip
    }
    spans = (
        joined("spans")
        .groupby("ticker", sort=True)
        .agg(first_day=("first_day", "min"), last_day=("last_day", "max"), size=("size", "sum"))
    )
    return {
        **{check: _block_of(frame) for check, frame in flagged.items()},
        "trading_days": distinct_days(joined("days")["date"].to_numpy()),
        "spans": spans,
    }


def _joined_runs(runs: pd.DataFrame, edges: pd.DataFrame, after_date: np.ndarray) -> pd.DataFrame:
    """Zero-volume runs that touch a part's edge, joined where a ticker's run goes on into its
    next part (its next row, the first of that part, starts the next run); those of
    ZERO_VOLUME_RUN rows or more."""
    runs = runs.sort_values(["ticker", "start"], kind="stable", ignore_index=True)
    if runs.empty:
        return runs[["ticker", "start", "end", "days"]]
    key = pd.MultiIndex.from_arrays([edges["ticker"], edges["date"]])
    at = key.get_indexer(pd.MultiIndex.from_arrays([runs["ticker"], runs["end"]]))
    next_row = np.where(at >= 0, after_date[np.maximum(at, 0)], np.datetime64("NaT"))
    ticker = runs["ticker"].to_numpy()
    goes_on = (
        runs["at_last"].to_numpy(bool)[:-1]
        & runs["at_first"].to_numpy(bool)[1:]
        & (ticker[:-1] == ticker[1:])
        & (next_row[:-1] == runs["start"].to_numpy()[1:])
    )
    group = np.cumsum(np.r_[True, ~goes_on])
    whole = runs.groupby(group).agg(
        ticker=("ticker", "first"), start=("start", "first"), end=("end", "last"), days=("days", "sum")
    )  # fmt: skip
    return whole[whole["days"] >= ZERO_VOLUME_RUN].reset_index(drop=True)


def _ordered(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return frame.sort_values(by, kind="stable", ignore_index=True)


def _block_of(frame: pd.DataFrame) -> dict:
    return {"count": len(frame), "examples": examples(frame) if len(frame) else []}


def examples(frame: pd.DataFrame) -> list[dict]:
    """The first EXAMPLES rows as the report lists them: days as text, floats as numbers."""
    out = []
    for rec in frame.head(EXAMPLES).to_dict("records"):
        out.append(
            {
                k: (
                    f"{v:%Y-%m-%d}"
                    if isinstance(v, pd.Timestamp)
                    else float(v)
                    if isinstance(v, float | np.floating)
                    else str(v)
                )
                for k, v in rec.items()
            }
        )
    return out


# -- a summary kept beside its part: a folder of feather files, one per frame


def save(summaries: dict[str, Summary], folder: Path) -> None:
    """Write a part's summaries (by source) as <folder>/<source>/<frame>.feather."""
    for source, summary in summaries.items():
        (folder / source).mkdir(parents=True)
        for key, frame in summary.items():
            feather.write_feather(frame.reset_index(drop=True), folder / source / f"{key}.feather")


def load(
    folder: Path, later: tuple[str, ...] = (), remake: Callable[[str], Summary] | None = None
) -> dict[str, Summary]:
    """A part's summaries as save() wrote them, text columns as the summaries hold them.
    `later`: frames read only where first used (Kept); `remake(source)`: that source's summary
    made again from its part, for a frame read later that cannot be read."""
    out = {}
    for source in sorted(p for p in folder.iterdir() if p.is_dir()):
        paths = {path.stem: path for path in sorted(source.glob("*.feather"))}
        frames = {k: read_frame(p) for k, p in paths.items() if k not in later}
        again = None if remake is None else functools.partial(remake, source.name)
        out[source.name] = Kept(frames, paths, again) if set(paths) - set(frames) else frames
    return out


class Kept(Mapping):
    """A part's summary read back, some frames read where first used (a report that keeps a
    part's coverage rows never reads its pairs). A frame that cannot be read then is taken from
    the summary made again (`remake`), as load() does for one it cannot read at once."""

    def __init__(self, frames: dict, paths: dict[str, Path], remake: Callable[[], Summary] | None):
        self._frames, self._paths, self._remake = frames, paths, remake

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._frames:
            try:
                self._frames[name] = read_frame(self._paths[name])
            except (OSError, ValueError, pa.ArrowException):
                if self._remake is None:
                    raise
                self._frames[name] = self._remake()[name]
        return self._frames[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)


def read_frame(path: Path) -> pd.DataFrame:
    """A kept frame as the summaries hold it: text as Python strings (object), numbers, days
    and flags as numpy arrays. Columns without missing values are taken straight from Arrow
    (a build loads some 300 of these small frames, so pandas' conversion per file counted);
    any other frame goes through pandas, text then made object."""
    table = feather.read_table(path, memory_map=False)
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
            if column.null_count and not pa.types.is_null(kind):
                break
            columns[name] = pd.Series(column.to_numpy(zero_copy_only=False), dtype=object)
        elif column.null_count == 0 and (
            pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind)
            or (pa.types.is_timestamp(kind) and kind.tz is None and kind.unit == "ns")
        ):  # fmt: skip
            columns[name] = column.to_numpy()
        else:
            break
    else:
        return pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows))
    frame = table.to_pandas()
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_datetime64_any_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]  # fmt: skip
    return frame.astype(dict.fromkeys(text, object)) if text else frame


def keys() -> set[str]:
    """The frames a summary holds (a kept summary without all of them is made again)."""
    return set(nothing())
