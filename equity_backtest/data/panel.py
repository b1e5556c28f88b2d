"""Load one dataset version into dense arrays (trading days x tickers) for one source and index.

The universe is every ticker that was ever a member of the index (delisted names included), so
the backtest is free of survivorship bias. Prices are raw (unadjusted); splits, dividends and
delistings are kept as per-day events that the engine applies. Fundamentals carry the trading-day
index from which they are public (D6), constituents an as-of index by list date (E2).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Parameters
from ..errors import BadInputError
from ..infra import heap
from . import panel_cache
from .consistency import fundamentals_vintage
from .datasets import current_version, load_tables
from .panel_fundamentals import FundamentalSeries, fundamental_series
from .quality import MAX_PLAUSIBLE_PRICE
from .vocabulary import MARKET_FIELDS, PRICE_FIELDS

log = logging.getLogger(__name__)
_THREADS = min(4, os.cpu_count() or 1)
_VOLATILITY_BLOCK = 64  # tickers per task of the volatility's rolling windows


@dataclasses.dataclass
class Events:
    """Per-day corporate actions: day index -> (ticker indices, values)."""

    splits: dict[int, tuple[np.ndarray, np.ndarray]]
    dividends: dict[int, tuple[np.ndarray, np.ndarray]]
    delistings: dict[int, tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass
class Panel:
    source: str
    index: str
    dataset_version: str
    dates: pd.DatetimeIndex
    tickers: np.ndarray
    fields: dict[str, np.ndarray]  # MARKET_FIELDS -> T x N float arrays, NaN where not traded
    mark: np.ndarray  # T x N last known close while listed (NaN before listing and after delisting)
    total_return: np.ndarray  # T x N daily total return per share held at the previous close
    events: Events
    list_dates: pd.DatetimeIndex
    membership: np.ndarray  # L x N bool
    list_of_day: (
        np.ndarray
    )  # T int: index of the latest list dated on or before each day (-1: none)
    fundamentals: dict[str, FundamentalSeries]
    metadata: pd.DataFrame  # indexed by ticker
    _volatility: dict[int, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)

    @functools.cached_property
    def labels(self) -> pd.Index:
        """The tickers as a pandas Index (built once). Object dtype, so that pandas 3 does not
        make it its Arrow-backed string type, whose lookups made the loop half as slow again."""
        return pd.Index(self.tickers, name="ticker", dtype=object)

    @functools.cached_property
    def mark_or_zero(self) -> np.ndarray:
        """The mark with 0 where there is none: what a position is worth at each close. Built
        once per panel, so that runs on one panel (a sweep, trials) share it."""
        return np.nan_to_num(self.mark)

    @functools.cached_property
    def priced(self) -> np.ndarray:
        """T x N bool: the ticker has a mark at that close (it may be weighted)."""
        return np.isfinite(self.mark)

    def volatility(self, days: int) -> np.ndarray:
        """T x N standard deviation of daily total returns over the `days` before each day
        (known at the previous close, so it may price that day's fills). Computed once per window."""
        if days not in self._volatility:
            # the rolling windows of days 0..T-2, each placed a day later (no shifted copy), a
            # block of tickers at a time on threads (pandas' rolling kernel runs without the
            # GIL; each ticker's column is computed alone, so the blocks change no bit)
            before, out = self.total_return[:-1], np.empty_like(self.total_return)
            out[0] = np.nan

            def block(first: int) -> None:
                cut = slice(first, first + _VOLATILITY_BLOCK)
                rolling = pd.DataFrame(before[:, cut]).rolling(days, min_periods=2)
                out[1:, cut] = rolling.std().to_numpy()

            with ThreadPoolExecutor(_THREADS) as pool:
                list(pool.map(block, range(0, out.shape[1], _VOLATILITY_BLOCK)))
            self._volatility[days] = out
        return self._volatility[days]

    def members(self, t: int) -> np.ndarray:
        """Bool mask of the index members in force at the close of day t that are still listed.

        A member delisted after its list date leaves at once (as index providers do); one that
        has not traded yet is not investable either.
        """
        k = self.list_of_day[t]
        if k < 0:
            return np.zeros(len(self.tickers), dtype=bool)
        return self.membership[k] & np.isfinite(self.mark[t])

    def day(self, date) -> int:
        """Index of the last trading day on or before `date` (-1 if before the data)."""
        return int(self.dates.searchsorted(pd.Timestamp(date), side="right")) - 1


@dataclasses.dataclass(frozen=True)
class PanelSpec:
    """What building the panel reads from the settings, built once: which dataset, which
    source and index, the last day, and the announcement lags for undated reports."""

    datasets_dir: str
    dataset_version: str | None
    source: str
    index: str
    end: dt.date
    fundamental_lag_days: tuple[tuple[str, int], ...]
    # volatility windows the engine will ask for (its impact model's), computed with the panel
    # so that the panel cache keeps them too
    volatility_days: tuple[int, ...] = ()
    cache: bool = False  # keep the built panel in the datasets folder's panel cache
    restated_lag_days: int = 0  # more days before restated-only fundamentals are public

    @classmethod
    def of(cls, params: Parameters) -> PanelSpec:
        lags = tuple(sorted(params.fundamental_lag_days.items()))
        windows = (params.impact_vol_days,) if params.impact_coef > 0 else ()
        return cls(
            str(params.datasets_dir), params.dataset_version, params.source, params.index,
            params.end, lags, windows, params.panel_cache, params.restated_lag_days,
        )  # fmt: skip

    def lag_days(self, metric: str) -> int:
        lags = dict(self.fundamental_lag_days)
        return lags.get(metric, lags.get("default", 45))


def load_panel(params: Parameters | PanelSpec, extra_tickers: tuple[str, ...] = ()) -> Panel:
    """Read the dataset version named in params (or CURRENT) and build the dense panel; a panel
    built before from the same version and settings comes from the cache (panel_cache)."""
    spec = params if isinstance(params, PanelSpec) else PanelSpec.of(params)
    datasets_dir = Path(spec.datasets_dir)
    version = spec.dataset_version or current_version(datasets_dir)
    if version is None or not (datasets_dir / version / "manifest.json").is_file():
        load_tables(datasets_dir, version)  # raises the message that names what is missing

    def build() -> Panel:
        # the market table a column at a time: never whole beside the dense arrays; the
        # temporaries' blocks kept for the next (see heap: fresh pages cost more than the work)
        with heap.kept():
            tables = load_tables(datasets_dir, version, by_column=("market",))[1]
            panel = panel_from_tables(version, tables, spec, extra_tickers)
            for days in spec.volatility_days:
                panel.volatility(days)
        return panel

    settings = (
        spec.source,
        spec.index,
        spec.end,
        spec.fundamental_lag_days,
        spec.volatility_days,
        tuple(extra_tickers),
        *((spec.restated_lag_days,) if spec.restated_lag_days else ()),  # (older keys unchanged)
    )
    if not spec.cache:
        return build()
    return panel_cache.load_or_build(
        datasets_dir, version, settings, build, types=(Panel, Events, FundamentalSeries)
    )


ALL = "ALL"  # index = "ALL": every ticker of the source with a price, no constituent lists


def _every_ticker(market, src: str, index: str, version: str) -> pd.DataFrame:
    """One constituent list, dated before the first day, of every ticker the source has prices
    for: the universe of index = "ALL" (A3), and of a source without constituent lists (said
    once). A ticker is then a member while it has a price, so a single-instrument file or a
    basket without an index needs no constituent file."""
    rows = (market["source"] == src).to_numpy()
    if not rows.any():
        return pd.DataFrame(columns=["source", "index", "date", "ticker"])
    if index.upper() != ALL:
        log.warning(
            "dataset %s has no constituent lists for source '%s': trading every ticker with a "
            'price (as index = "ALL"); import constituent lists for a point-in-time index',
            version,
            src,
        )
    tickers = sorted(set(market["ticker"][rows].astype(str)))
    first = pd.Timestamp(market["date"][rows].min()) - pd.Timedelta(days=1)
    return pd.DataFrame({"source": src, "index": ALL, "date": first, "ticker": tickers})


def panel_from_tables(
    version: str,
    tables: dict[str, pd.DataFrame],
    params: Parameters | PanelSpec,
    extra_tickers: tuple[str, ...] = (),
) -> Panel:
    spec = params if isinstance(params, PanelSpec) else PanelSpec.of(params)
    src = spec.source
    cons = tables["constituents"]
    of_source = cons[cons["source"] == src]
    if spec.index.upper() == ALL or of_source.empty:
        cons = _every_ticker(tables["market"], src, spec.index, version)
    else:
        cons = of_source[of_source["index"] == spec.index]
    if cons.empty:
        known = sorted(
            {
                f"{s}/{i}"
                for s, i in zip(
                    tables["constituents"]["source"], tables["constituents"]["index"], strict=True
                )
            }
        )
        raise BadInputError(
            f"dataset {version} has no constituent lists for source '{src}' and index "
            f"'{spec.index}'; available: {', '.join(known) or 'none'}. Check 'source' and 'index'."
        )
    tickers = np.array(sorted(set(cons["ticker"]) | set(extra_tickers)), dtype=object)
    code = {t: i for i, t in enumerate(tickers)}
    N = len(tickers)

    market = tables["market"]  # (a DataFrame, or datasets.Columns: read part by part)
    where = _placement(market, src, tickers, pd.Timestamp(spec.end))
    if where is None:
        raise BadInputError(f"dataset {version} has no market data for the members of {spec.index}")
    dates, all_dates, places, last_row_full = where
    T = len(dates)
    if T == 0:
        raise BadInputError(f"no trading days on or before end={spec.end} in dataset {version}")
    # the panel's T x N arrays allocated and touched on a thread while this one places values
    # (faulting in fresh pages costs more than the placing, and the kernel does it beside us)
    with ThreadPoolExecutor(1) as pool:
        blank = [pool.submit(np.full, (T, N), np.nan) for _ in MARKET_FIELDS]
        spare = [pool.submit(_touched, (T, N)) for _ in ("mark", "total return")]
        fields = {}
        for f, allocated in zip(MARKET_FIELDS, blank, strict=True):  # a column at a time
            fields[f] = allocated.result()
            flat = fields[f].reshape(-1)
            for (taken, at), part in zip(places, _parts(market, [f]), strict=True):
                flat[at] = part[f].to_numpy(dtype=float)[taken]
        del places, blank
        spare = [a.result() for a in spare]
    _drop_implausible_prices(fields, tickers, dates)

    events = _events(
        tables["corporate_actions"], src, code, dates, all_dates, fields["close"], last_row_full
    )
    mark = _carried_forward(fields["close"], spare[0])
    for t, (idx, _) in events.delistings.items():
        mark[t:, idx] = np.nan  # never carried at a stale price after delisting
    total_return = _total_return(mark, events, spare[1])

    list_dates = pd.DatetimeIndex(np.unique(cons["date"].to_numpy()))
    membership = np.zeros((len(list_dates), N), dtype=bool)
    membership[
        list_dates.searchsorted(cons["date"].to_numpy()),
        pd.Index(tickers).get_indexer(cons["ticker"]),
    ] = True
    list_of_day = list_dates.searchsorted(dates, side="right") - 1

    meta = tables["metadata"]
    meta = meta[meta["source"] == src].drop(columns=["source", "log_ts"]).set_index("ticker")
    meta = meta.reindex(pd.Index(tickers, name="ticker"))
    return Panel(
        src,
        spec.index,
        version,
        dates,
        tickers,
        fields,
        mark,
        total_return,
        events,
        list_dates,
        membership,
        list_of_day,
        _fundamentals(tables["fundamentals"], src, tickers, dates, spec, tables["metadata"]),
        meta,
    )


def _parts(market, columns: list[str]):
    """The market table's columns part by part (datasets.Columns), or whole (a DataFrame)."""
    return [market[columns]] if isinstance(market, pd.DataFrame) else market.parts(columns)


def _placement(market, src: str, tickers: np.ndarray, end: pd.Timestamp):
    """Where the market rows of the source's tickers go in the T x N arrays, part by part:
    (dates up to `end`, every date, [(rows of the part, flat places)], each ticker's last row on
    every date); None when no row is of them. Rows dated after `end` are left out."""
    kept = []  # per part: its rows of these tickers, their ticker codes, their dates (coded)
    labels = pd.Index(tickers)
    for part in _parts(market, ["source", "ticker", "date"]):
        cols = _codes(part["ticker"], labels)
        rows = ((part["source"] == src).to_numpy() & (cols >= 0)).nonzero()[0]
        day, days = pd.factorize(part["date"].to_numpy()[rows], use_na_sentinel=False)
        kept.append((rows.astype(np.int32), cols[rows].astype(np.int32), day, days))
    if not any(len(rows) for rows, *_ in kept):
        return None
    all_dates = pd.DatetimeIndex(np.unique(np.concatenate([days for *_, days in kept])))
    dates = all_dates[all_dates <= end]
    T, N = len(dates), len(tickers)
    last_row_full = np.full(N, -1)  # to spot series that just stop
    places = []
    for rows, cols, day, days in kept:
        row = all_dates.searchsorted(days)[day]
        np.maximum.at(last_row_full, cols, row)
        keep = row < T
        at = row * N + cols  # (int64: row is)
        places.append((rows, at) if keep.all() else (rows[keep], at[keep]))
    return dates, all_dates, places, last_row_full


def _drop_implausible_prices(
    fields: dict[str, np.ndarray], tickers: np.ndarray, dates: pd.DatetimeIndex
) -> None:
    """A price that is not positive or above MAX_PLAUSIBLE_PRICE (the quality report lists them)
    is treated as missing: the engine never fills or marks at it; the last good close stands."""
    for f in PRICE_FIELDS:
        arr = fields[f]
        with np.errstate(invalid="ignore"):
            bad = (arr <= 0) | (arr > MAX_PLAUSIBLE_PRICE)
        if not bad.any():
            continue
        t, i = np.nonzero(bad)
        shown = ", ".join(
            f"{tickers[i[k]]} on {dates[t[k]]:%Y-%m-%d} ({arr[t[k], i[k]]:.6g})"
            for k in range(min(5, len(t)))
        )
        log.warning(
            "%d implausible %s price(s) treated as missing (no fill or mark at them): %s%s",
            len(t),
            f,
            shown,
            ", ..." if len(t) > 5 else "",
        )
        arr[bad] = np.nan


def _codes(column: pd.Series, tickers: np.ndarray | pd.Index) -> np.ndarray:
    """Position of each row's ticker in `tickers` (-1 if absent); categorical columns (as the
    builder writes them) map through their few categories instead of every row's string."""
    labels = tickers if isinstance(tickers, pd.Index) else pd.Index(tickers)
    if isinstance(column.dtype, pd.CategoricalDtype):
        lookup = np.append(labels.get_indexer(column.cat.categories), -1)  # code -1 (missing) -> -1
        return lookup[column.cat.codes.to_numpy()]
    return labels.get_indexer(column)


def _touched(shape: tuple[int, int]) -> np.ndarray:
    """An array whose pages are faulted in (np.zeros' would be, lazily, at first write)."""
    out = np.empty(shape)
    out.fill(0.0)
    return out


def _carried_forward(close: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Each ticker's last close carried over the days without one (into `out`, built a day at a
    time: no T x N temporaries)."""
    np.copyto(out, close)
    for t in range(1, len(out)):
        row = out[t]
        np.copyto(row, out[t - 1], where=np.isnan(row))
    return out


def _total_return(mark: np.ndarray, events: Events, out: np.ndarray) -> np.ndarray:
    """Return of holding one share from the previous close to this close: splits multiply the
    share count, dividends arrive as cash, a delisting pays its value (takeover or recovery)."""
    # (close x split ratio, or the delisting value) + dividend, over the previous close, less 1:
    # computed in place on one T x N array, the events only where they are (a CRSP-sized panel
    # holds no second or third array for factors and income)
    ret = out  # (into `out`: no T x N temporaries)
    np.copyto(ret, mark)
    for t, (idx, val) in events.splits.items():
        ret[t, idx] *= val
    for t, (idx, val) in events.delistings.items():
        ret[t, idx] = val  # (the value paid: no split applies to it)
    for t, (idx, val) in events.dividends.items():
        ret[t, idx] += val
    with np.errstate(divide="ignore", invalid="ignore"):
        ret[1:] /= mark[:-1]
    ret[1:] -= 1.0
    ret[0] = np.nan
    return ret


def _by_day(frame: pd.DataFrame) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{day: (ticker codes, values)}, each day's rows in their order in the frame."""
    t = frame["t"].to_numpy(dtype=np.int64)
    if not len(t):
        return {}
    order = np.argsort(t, kind="stable")
    t = t[order]
    i = frame["i"].to_numpy(dtype=np.int64)[order]
    v = frame["value"].to_numpy(dtype=float)[order]
    days, starts = np.unique(t, return_index=True)
    cuts = starts[1:]
    return {
        int(d): (ii, vv)
        for d, ii, vv in zip(days, np.split(i, cuts), np.split(v, cuts), strict=True)
    }


def _events(
    ca: pd.DataFrame,
    src: str,
    code: dict,
    dates: pd.DatetimeIndex,
    all_dates: pd.DatetimeIndex,
    close: np.ndarray,
    last_row_full: np.ndarray,
) -> Events:
    ca = ca[(ca["source"] == src) & ca["ticker"].isin(code)].copy()
    ca["i"] = pd.Index(list(code)).get_indexer(ca["ticker"])
    ca["t"] = dates.searchsorted(
        ca["date"].to_numpy()
    )  # a non-trading date applies the next trading day
    ca = ca[ca["t"] < len(dates)]
    bad_split = (ca["action"] == "split") & ~(ca["value"] > 0)
    if bad_split.any():
        row = ca[bad_split].iloc[0]
        raise BadInputError(
            f"corporate action for {row['ticker']} on {row['date']:%Y-%m-%d}: split ratio "
            f"{row['value']} must be positive"
        )
    delist = ca[ca["action"] == "delisting"].sort_values("t").drop_duplicates("i", keep="first")
    # a price series that stops before the data does, with no delisting record: close at last price
    recorded = set(delist["i"])
    T_full, T = len(all_dates), len(dates)
    synthetic = []
    for i in np.flatnonzero((last_row_full >= 0) & (last_row_full < T_full - 1)):
        t = int(last_row_full[i]) + 1
        if i not in recorded and t < T:
            synthetic.append({"i": i, "t": t, "value": close[t - 1, i]})
            log.warning(
                "%s stops trading after %s with no delisting record; closing any holding at its "
                "last price %.4g",
                next(k for k, v in code.items() if v == i),
                dates[t - 1].date(),
                close[t - 1, i],
            )
    if synthetic:
        delist = pd.concat([delist, pd.DataFrame(synthetic)], ignore_index=True)
    return Events(
        splits=_by_day(ca[ca["action"] == "split"]),
        dividends=_by_day(ca[ca["action"] == "dividend"]),
        delistings=_by_day(delist),
    )


def _fundamentals(
    fund: pd.DataFrame,
    src: str,
    tickers: np.ndarray,
    dates: pd.DatetimeIndex,
    spec: PanelSpec,
    metadata: pd.DataFrame,
) -> dict[str, FundamentalSeries]:
    """The source's reports of these tickers as series; where the source's fundamentals are
    restated figures, each is public restated_lag_days later."""
    vintage = fundamentals_vintage(metadata, src) or ""
    later = spec.restated_lag_days if vintage.startswith("as restated") else 0
    cols = _codes(fund["ticker"], tickers)
    return fundamental_series(fund, src, cols, dates, spec.lag_days, later)
