"""The read-only, point-in-time view that `compute_weights(view, params)` receives (E2, S1).

Everything it returns is known at the close of `view.date`: members of the latest constituent
list dated on or before that day, market fields up to that close, fundamentals from the day they
became public, metadata, and the current portfolio. It is built only on rebalance days, from the
panel's dense arrays, and every accessor returns a fresh pandas object, so changing what you get
cannot change the backtest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.panel import Panel
from ..data.panel_fundamentals import latest_fundamentals
from ..data.vocabulary import MARKET_FIELDS


class View:
    """What the algorithm may see at the close of one day."""

    __slots__ = ("_panel", "_t", "_shares", "_cash", "_lookback", "_universe")

    def __init__(self, panel: Panel, t: int, shares: np.ndarray, cash: float, lookback: int):
        self._panel = panel
        self._t = t
        self._shares = shares.copy()
        self._cash = float(cash)
        self._lookback = lookback
        self._universe: tuple[pd.Index, np.ndarray] | None = None  # (the Index handed out, mask)

    @property
    def dataset_version(self) -> str:
        """The dataset version this view reads (recorded with decisions made from it)."""
        return self._panel.dataset_version

    @property
    def date(self) -> pd.Timestamp:
        """The decision day; orders made now fill on the next trading day."""
        return self._panel.dates[self._t]

    @property
    def universe(self) -> pd.Index:
        """Tickers of the index members in force at this close (point in time, survivors and not)."""
        mask = self._panel.members(self._t)
        labels = self._panel.labels[mask]
        self._universe = (labels, mask)  # view.market(view.universe) then needs no lookup
        return labels

    @property
    def given_universe(self) -> tuple[pd.Index, np.ndarray] | None:
        """The Index that view.universe last handed out and its mask over the panel's tickers
        (None if it was not read): weights indexed by it need no label lookup."""
        return self._universe

    @property
    def holdings(self) -> pd.Series:
        """Shares currently held (non-zero positions only)."""
        held = self._shares != 0
        return pd.Series(
            self._shares[held],
            index=self._panel.labels[held],
            name="shares",
        )

    @property
    def cash(self) -> float:
        return self._cash

    @property
    def portfolio_value(self) -> float:
        """Cash plus holdings marked at this close."""
        return self._cash + float(np.nansum(self._shares * self._panel.mark[self._t]))

    @property
    def weights(self) -> pd.Series:
        """Current weights of the holdings in portfolio value."""
        held = self._shares != 0
        value = self._shares[held] * self._panel.mark[self._t, held]
        return pd.Series(value / self.portfolio_value, index=self.holdings.index, name="weight")

    def _tickers_mask(self, tickers) -> np.ndarray:
        if tickers is None:
            return self._panel.members(self._t) | (self._shares != 0)
        if self._universe is not None and tickers is self._universe[0]:
            return self._universe[1].copy()
        mask = np.zeros(len(self._panel.tickers), dtype=bool)
        pos = self._panel.labels.get_indexer(pd.Index(tickers).unique())
        mask[pos[pos >= 0]] = True
        return mask

    def market(self, tickers=None) -> pd.DataFrame:
        """Latest market fields at this close for the universe and holdings (or given tickers).

        'close' is the last known close (carried over days without a trade); 'traded' says whether
        the ticker traded today.
        """
        mask = self._tickers_mask(tickers)
        data = {f: self._panel.fields[f][self._t, mask] for f in MARKET_FIELDS}
        data["close"] = self._panel.mark[self._t, mask]
        data["traded"] = np.isfinite(self._panel.fields["close"][self._t, mask])
        return pd.DataFrame(data, index=self._panel.labels[mask])

    def history(
        self,
        field: str = "close",
        days: int | None = None,
        tickers=None,
        split_adjusted: bool = False,
    ) -> pd.DataFrame:
        """The last `days` trading days (default: parameters' lookback_days) of a market field,
        up to and including this close. Raw prices by default; with `split_adjusted`, prices
        (and volumes, inversely) are restated in today's shares for the splits up to this close,
        point in time: a split after it is never applied. Use returns() for total returns."""
        days = self._lookback if days is None else int(days)
        lo = max(0, self._t - days + 1)
        mask = self._tickers_mask(tickers)
        source = self._panel.mark if field == "close" else self._panel.fields[field]
        values = source[lo : self._t + 1][:, mask].copy()
        if split_adjusted:
            factor = self._splits_after(lo)[:, mask]  # shares today per share on each day
            values = values * factor if field == "volume" else values / factor
        return pd.DataFrame(
            values,
            index=self._panel.dates[lo : self._t + 1],
            columns=self._panel.labels[mask],
        )

    def _splits_after(self, lo: int) -> np.ndarray:
        """(days lo..t) x tickers: the product of split ratios after each day, up to this close."""
        n = self._t - lo + 1
        ratio = np.ones((n, len(self._panel.tickers)))
        for t, (idx, value) in self._panel.events.splits.items():
            if lo < t <= self._t:
                ratio[t - lo, idx] *= value
        after = np.ones_like(ratio)
        after[:-1] = np.cumprod(ratio[::-1], axis=0)[::-1][1:]
        return after

    def splits(self, tickers=None) -> pd.DataFrame:
        """Splits up to this close (point in time): ticker, date and ratio (new shares per old
        share), oldest first; to restate a figure reported before a split in today's shares."""
        mask = self._tickers_mask(tickers)
        rows = [
            (self._panel.tickers[i], self._panel.dates[t], float(r))
            for t, (idx, value) in sorted(self._panel.events.splits.items())
            if t <= self._t
            for i, r in zip(idx, value, strict=True)
            if mask[i]
        ]
        return pd.DataFrame(rows, columns=["ticker", "date", "ratio"])

    def returns(self, days: int | None = None, tickers=None) -> pd.DataFrame:
        """Daily total returns (splits, dividends and delisting values accounted for) over the
        lookback window, up to and including this close."""
        days = self._lookback if days is None else int(days)
        lo = max(1, self._t - days + 1)
        mask = self._tickers_mask(tickers)
        return pd.DataFrame(
            self._panel.total_return[lo : self._t + 1][:, mask].copy(),
            index=self._panel.dates[lo : self._t + 1],
            columns=self._panel.labels[mask],
        )

    def dividends(self, days: int = 252, tickers=None) -> pd.Series:
        """Cash dividends per share paid over the last `days` trading days (ex-dates up to this
        close), per ticker; splits inside the window are not adjusted for."""
        mask = self._tickers_mask(tickers)
        total = np.zeros(len(self._panel.tickers))
        events = self._panel.events.dividends
        for t in range(max(0, self._t - days + 1), self._t + 1):
            if t in events:
                idx, amount = events[t]
                np.add.at(total, idx, amount)
        return pd.Series(total[mask], index=self._panel.labels[mask], name="dividends")

    def fundamentals(self, metrics=None, tickers=None) -> pd.DataFrame:
        """Latest fundamentals publicly known at this close (one row per ticker, one column per metric)."""
        p = self._panel
        mask = self._tickers_mask(tickers)
        names = list(p.fundamentals) if metrics is None else list(metrics)
        data = {}
        for m in names:
            if m not in p.fundamentals:
                data[m] = np.full(mask.sum(), np.nan)
                continue
            values, _ = latest_fundamentals(p.fundamentals[m], self._t, len(p.tickers))
            data[m] = values[mask]
        return pd.DataFrame(data, index=p.labels[mask])

    def fundamentals_history(self, metric: str, periods: int = 4, tickers=None) -> pd.DataFrame:
        """The last `periods` reported values of a metric that are public by this close, per ticker
        (long format: ticker, period_end, value, lag with 0 = latest period); a restated period
        shows its latest public version."""
        p = self._panel
        cols = ["ticker", "period_end", "value", "lag"]
        series = p.fundamentals.get(metric)
        if series is None:
            return pd.DataFrame(columns=cols)
        mask = self._tickers_mask(tickers)
        seen = (series.public_day <= self._t) & mask[series.ticker]
        frame = pd.DataFrame(
            {
                "code": series.ticker[seen],
                "period_end": series.period_end[seen],
                "value": series.value[seen],
            }
        )
        frame = frame.drop_duplicates(
            ["code", "period_end"], keep="last"
        )  # sorted: latest version last
        frame = frame.groupby("code", sort=True).tail(periods)
        frame["lag"] = frame.groupby("code").cumcount(ascending=False)
        frame.insert(0, "ticker", p.tickers[frame.pop("code").to_numpy()])
        return frame.sort_values(["ticker", "lag"], kind="stable").reset_index(drop=True)[cols]

    @property
    def metadata(self) -> pd.DataFrame:
        """Names, sectors and identifiers of the universe and holdings; where the vendor gave a
        sector history (sector_history), the sector is the one in effect on this date."""
        mask = self._tickers_mask(None)
        meta = self._panel.metadata.iloc[np.flatnonzero(mask)].copy()
        if "sector_history" in meta:
            then = [as_of_value(h, self.date) for h in meta["sector_history"]]
            meta["sector"] = [
                s if s is not None else now for s, now in zip(then, meta["sector"], strict=True)
            ]
        return meta

    def __repr__(self) -> str:
        return f"<View {self.date:%Y-%m-%d}: {len(self.universe)} members, {len(self.holdings)} holdings>"


def as_of_value(history, day) -> str | None:
    """The value in effect on `day` from a history "YYYY-MM-DD value; YYYY-MM-DD value; ..."
    (each value from its date on); None when there is no history or nothing yet on that day."""
    if not isinstance(history, str) or not history.strip():
        return None
    current = None
    for part in history.split(";"):
        start, _, value = part.strip().partition(" ")
        try:
            since = pd.Timestamp(start)
        except ValueError:
            continue
        if since <= pd.Timestamp(day) and value.strip():
            current = value.strip()
    return current
