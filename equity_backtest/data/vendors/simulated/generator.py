"""The simulation itself, day by day: listings and delistings, prices with planted factor
premia, splits and dividends, quarterly fundamentals with their announcement dates, and the
index of the top N by market cap with its monthly lists and quarterly reviews."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm import tqdm

from ... import calendars
from .regimes import _market_returns
from .settings import (
    _NAME_A,
    _NAME_B,
    _NAME_C,
    BOOK_ANCHOR_SPEED,
    INDEX_BUFFER,
    INITIAL_SIZE_SPREAD,
    NET_ISSUANCE,
    PREMIA,
    PREMIUM_Z_CLIP,
    SECTORS,
    SIZE_VOL_ELASTICITY,
    SIZE_Z_CLIP,
    TRADING_DAYS,
    SimulatedMarket,
    SimulationSettings,
    _tickers,
    trading_calendar,
)
from .tables import _assemble


def _zscore(x: np.ndarray, mask: np.ndarray, clip: float = 3.0) -> np.ndarray:
    z = np.zeros_like(x)
    v = x[mask]
    ok = np.isfinite(v)
    if ok.sum() > 2:
        mu, sd = v[ok].mean(), v[ok].std()
        z[mask] = np.where(ok, (v - mu) / (sd if sd > 0 else 1.0), 0.0)
    return np.clip(z, -clip, clip)


def _larger(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Python's max(a, b) value by value (a unless b is greater)."""
    return np.where(b > a, b, a)


def _smaller(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Python's min(a, b) value by value (a unless b is smaller)."""
    return np.where(b < a, b, a)


def simulate(settings: SimulationSettings, progress: bool = False) -> SimulatedMarket:
    """Generate the whole market day by day (O(days x tickers) numpy work, a few seconds)."""
    rng = np.random.default_rng(settings.seed)
    cal = trading_calendar(settings.start, settings.end, settings.calendar)
    half_day = cal.isin(calendars.early_closes(settings.calendar, settings.start, settings.end))
    T, N = len(cal), settings.n_tickers
    if T < 260:
        raise ValueError("the simulated market needs at least about a year of trading days")

    # --- static firm characteristics ---------------------------------------------------------
    tickers = _tickers(rng, N)
    sector_names = [s for s, _ in SECTORS]
    sector_p = np.array([p for _, p in SECTORS])
    sector = rng.choice(len(SECTORS), size=N, p=sector_p / sector_p.sum())
    names = [
        f"{_NAME_A[rng.integers(len(_NAME_A))]}{_NAME_B[rng.integers(len(_NAME_B))]} "
        f"{_NAME_C[rng.integers(len(_NAME_C))]}"
        for _ in range(N)
    ]
    ipo_day = np.where(rng.random(N) < 0.6, 0, rng.integers(1, int(0.95 * T), size=N))
    beta = np.clip(rng.normal(1.0, 0.3, N), 0.3, 2.0)
    idio_vol = np.clip(np.exp(rng.normal(np.log(0.25), 0.35, N)), 0.10, 0.70)
    roa_level = rng.normal(0.05, 0.05, N)
    bm_target = np.exp(rng.normal(np.log(0.5), 0.6, N))
    turnover = np.exp(rng.normal(np.log(0.006), 0.5, N))
    payer = rng.random(N) < 0.45
    payout = rng.uniform(0.2, 0.6, N)
    asset_turnover = rng.uniform(0.4, 1.5, N)
    lev = rng.uniform(0.05, 0.45, N)
    eq_ratio = np.clip(1.0 - lev - rng.uniform(0.1, 0.3, N), 0.15, 0.8)
    cash_ratio = rng.uniform(0.03, 0.15, N)
    ca_ratio = cash_ratio + rng.uniform(0.15, 0.35, N)
    cl_ratio = rng.uniform(0.1, 0.3, N)
    nfa_ratio = rng.uniform(0.1, 0.6, N)
    capex_ratio = rng.uniform(0.02, 0.08, N)
    # overheads (SG&A) as a share of assets, from a child stream so the main stream is unchanged:
    # gross profit = EBIT + overheads, so gross profitability follows the planted quality
    overhead_ratio = np.random.default_rng([settings.seed, 1]).uniform(0.02, 0.10, N)

    # --- shocks drawn up front (deterministic whatever the loop does) -----------------------
    m_ret, in_stress, regimes = _market_returns(rng, cal)
    sector_ret = 0.08 / np.sqrt(TRADING_DAYS) * rng.standard_normal((T, len(SECTORS)))
    eps = rng.standard_normal((T, N))
    gap_eps = rng.standard_normal((T, N))
    hl_eps = rng.standard_normal((T, 2, N))
    np.abs(hl_eps, out=hl_eps)
    vol_eps = rng.standard_normal((T, N))

    month_start = np.r_[True, cal.month[1:] != cal.month[:-1]]
    quarter_end = np.r_[cal.quarter[1:] != cal.quarter[:-1], False] | (np.arange(T) == T - 1) & (
        (cal[-1] + pd.offsets.BDay(1)).quarter != cal[-1].quarter
    )
    quarter_start = month_start & np.r_[True, cal.quarter[1:] != cal.quarter[:-1]]
    sd_daily = idio_vol / np.sqrt(TRADING_DAYS)

    # --- state ---------------------------------------------------------------------------------
    status = np.zeros(N, dtype=np.int8)  # 0 not listed yet, 1 trading, 2 delisted
    price = np.full(N, np.nan)
    shares = np.zeros(N)
    tri = np.ones(N)  # total-return index, for momentum
    tri_month: list[np.ndarray] = []
    alpha = np.zeros(N)
    roa = roa_level.copy()
    scale = np.zeros(N)  # total assets
    days_left = np.full(N, -1)  # trading days until delisting (>= 0 once a delisting is set)
    delist_kind = np.zeros(N, dtype=np.int8)  # 1 bankruptcy, 2 takeover
    delist_value = np.zeros(N)
    div_day = np.full(N, -1)
    div_amount = np.zeros(N)

    # each day's quotes (NaN where a name does not trade) are written over that day's spent
    # shocks, so five of the six day-by-ticker arrays of quotes cost no memory of their own
    out = {"open": gap_eps, "high": hl_eps[:, 0], "low": hl_eps[:, 1], "close": eps}
    out |= {"volume": vol_eps, "market_cap": np.empty((T, N))}
    actions: list[tuple[int, int, str, float]] = []
    fundamentals: list[dict[str, np.ndarray]] = []  # a quarter's reports, column by column
    constituents: list[tuple[int, np.ndarray, np.ndarray]] = []  # (day, members, weights)
    events: list[tuple] = []
    for row in regimes[regimes["regime"] != "high volatility"].itertuples():
        events.append(("", row.start, row.regime, float((row.end - row.start).days)))
    members = np.zeros(N, dtype=bool)  # the index's members (its last list)

    for t in tqdm(
        range(T), desc="simulating market", unit="day", disable=not progress, leave=False
    ):
        # IPOs at the start of the day
        new = (ipo_day == t) & (status == 0)
        if new.any():
            k = int(new.sum())
            price[new] = rng.uniform(10, 60, k)
            mcap0 = np.exp(rng.normal(np.log(4e9 if t == 0 else 1.5e9), INITIAL_SIZE_SPREAD, k))
            shares[new] = np.round(mcap0 / price[new])
            scale[new] = mcap0 * bm_target[new] / eq_ratio[new]
            status[new] = 1
            if t > 0:
                events.extend(
                    (tickers[i], cal[t], "ipo", float(price[i])) for i in np.flatnonzero(new)
                )
        live = status == 1
        prev = price.copy()

        if month_start[t]:
            tri_month.append(tri.copy())
            # planted premia from what the books and prices say now
            mcap = price * shares
            with np.errstate(divide="ignore", invalid="ignore"):
                value = np.log(scale * eq_ratio / mcap)
                mom = (
                    np.log(tri_month[-2] / tri_month[-13]) if len(tri_month) >= 13 else np.zeros(N)
                )
            # large firms are steadier: idiosyncratic volatility falls with relative size
            with np.errstate(divide="ignore", invalid="ignore"):
                relative = np.clip(mcap / np.nanmedian(np.where(live, mcap, np.nan)), 0.3, 50)
            vol_now = np.where(
                live, np.minimum(idio_vol * relative**-SIZE_VOL_ELASTICITY, 0.8), idio_vol
            )
            sd_daily = vol_now / np.sqrt(TRADING_DAYS)
            tot_vol = np.sqrt((beta * 0.16) ** 2 + vol_now**2)
            c = PREMIUM_Z_CLIP
            alpha = (
                PREMIA["value"] * _zscore(value, live, c)
                + PREMIA["quality"] * _zscore(roa, live, c)
                + PREMIA["momentum"] * _zscore(mom, live, c)
                - PREMIA["low_volatility"] * _zscore(tot_vol, live, c)
            )
            # premia are relative: the cap-weighted market earns the market's return, no more
            cap_w = np.where(live, np.nan_to_num(mcap), 0.0)
            alpha = np.where(live, alpha - (alpha * cap_w).sum() / cap_w.sum(), 0.0)
            # delisting hazards (monthly), only for names not already on their way out
            free = live & (days_left < 0)
            stress = 3.0 if in_stress[t] else 1.0
            p_bankrupt = np.clip(0.0012 * np.exp(-30.0 * roa) * stress, 0, 0.2)
            bankrupt = free & (rng.random(N) < p_bankrupt)
            takeover = free & ~bankrupt & (rng.random(N) < 0.0015)
            for i in np.flatnonzero(bankrupt):
                days_left[i], delist_kind[i] = int(rng.integers(15, 30)), 1
                delist_value[i] = 0.0 if rng.random() < 0.5 else rng.uniform(0.01, 0.15)
            for i in np.flatnonzero(takeover):
                days_left[i], delist_kind[i] = int(rng.integers(20, 60)), 2
                delist_value[i] = price[i] * rng.uniform(1.15, 1.5)  # the deal price per share
            # net issuance: small firms issue shares, large ones buy theirs back, so relative
            # size mean-reverts through the share count (holders' returns are untouched)
            with np.errstate(divide="ignore", invalid="ignore"):
                size_z = _zscore(np.log(mcap), live, SIZE_Z_CLIP)
            shares = np.where(live, shares * np.exp(-NET_ISSUANCE * size_z / 12), shares)
            # splits when the price has run high: effective today, before the open
            split = live & (price > 120) & (days_left < 0) & (rng.random(N) < 0.5)
            for i in np.flatnonzero(split):
                ratio = float(rng.choice([2, 3, 4], p=[0.7, 0.2, 0.1]))
                prev[i] /= ratio
                price[i] /= ratio
                shares[i] *= ratio
                div_amount[i] /= ratio
                actions.append((t, i, "split", ratio))

        # daily total returns
        r = alpha / TRADING_DAYS + beta * m_ret[t] + sector_ret[t, sector] + sd_daily * eps[t]
        slide = live & (delist_kind == 1)
        r[slide] = -0.08 + 0.03 * eps[t, slide]
        deal = live & (delist_kind == 2)
        if deal.any():
            target = delist_value * 0.985
            # announcement day: jump to just under the deal price; then trade tightly around it
            gap = target[deal] / prev[deal] - 1.0
            r[deal] = np.where(
                prev[deal] < 0.9 * target[deal], gap, 0.5 * gap + 0.002 * eps[t, deal]
            )
        r = np.maximum(r, -0.9)
        tri = np.where(live, tri * (1.0 + r), tri)
        dividend = np.where(live & (div_day == t), div_amount, 0.0)
        close = prev * (1.0 + r) - dividend
        close = np.maximum(close, 0.01)
        open_ = (prev - dividend) * np.exp(0.25 * np.log1p(r) + 0.3 * sd_daily * gap_eps[t])
        open_ = np.maximum(open_, 0.01)
        high = np.maximum(open_, close) * (1.0 + 0.5 * sd_daily * hl_eps[t, 0])
        low = np.maximum(np.minimum(open_, close) * (1.0 - 0.5 * sd_daily * hl_eps[t, 1]), 0.005)
        vol = np.round(
            shares
            * turnover
            * np.exp(0.4 * vol_eps[t])
            * (1.0 + 15.0 * np.abs(r))
            * (0.55 if half_day[t] else 1.0)
        )
        for i in np.flatnonzero(dividend > 0):
            actions.append((t, i, "dividend", float(dividend[i])))
            div_day[i] = -1

        price = np.where(live, close, price)
        for key, arr in (
            ("open", open_),
            ("high", high),
            ("low", low),
            ("close", close),
            ("volume", vol),
            ("market_cap", close * shares),
        ):
            out[key][t] = np.where(live, arr, np.nan)  # (after the day's last use of its shocks)

        # quarterly books (period end = calendar quarter end), announced 20-50 days later
        if quarter_end[t]:
            period_end = (cal[t] + pd.offsets.QuarterEnd(0)).normalize()
            idx = np.flatnonzero(live)
            mcap = price[idx] * shares[idx]
            anchor = np.log(mcap * bm_target[idx] / eq_ratio[idx])
            # book value tracks the firm's target book-to-market quickly, with its own noise, so
            # value is a characteristic of the firm rather than a mirror of recent returns
            scale[idx] = np.exp(
                np.log(scale[idx])
                + BOOK_ANCHOR_SPEED * (anchor - np.log(scale[idx]))
                + rng.normal(0.0, 0.05, len(idx))
            )
            roa[idx] = 0.8 * roa[idx] + 0.2 * roa_level[idx] + rng.normal(0, 0.01, len(idx))
            s = scale[idx]
            ni = roa[idx] * s / 4
            interest = 0.05 * lev[idx] * s / 4
            lag = rng.integers(20, 51, len(idx))
            rev = s * asset_turnover[idx] / 4 * np.exp(rng.normal(0, 0.03, len(idx)))
            cash = s * cash_ratio[idx] * np.exp(rng.normal(0, 0.1, len(idx)))
            ocf = ni + 0.01 * s + rng.normal(0, 0.005, len(idx)) * s
            announced = period_end + pd.to_timedelta(lag, unit="D")
            ebit = ni / 0.75 + interest
            fundamentals.append(
                {
                    "i": idx,
                    "period_end": np.repeat(period_end.to_datetime64(), len(idx)),
                    "announcement_date": announced.values,
                    "revenue": rev,
                    "ebit": ebit,
                    "net_income": ni,
                    "total_assets": s,
                    "total_equity": s * eq_ratio[idx],
                    "total_debt": s * lev[idx],
                    "cash": cash,
                    "current_assets": _larger(s * ca_ratio[idx], cash),
                    "current_liabilities": s * cl_ratio[idx],
                    "net_fixed_assets": s * nfa_ratio[idx],
                    "shares_outstanding": shares[idx],
                    "operating_cash_flow": ocf,
                    "capex": s * capex_ratio[idx] / 4,
                    "gross_profit": ebit + s * overhead_ratio[idx] / 4,
                }
            )
            # payers that earned money go ex-dividend on the trading day 14 days after the news
            ex = np.searchsorted(cal.values, (announced + pd.Timedelta(days=14)).values)
            pays = payer[idx] & (ni > 0) & (days_left[idx] < 0) & (ex < T)
            div_day[idx[pays]] = ex[pays]
            div_amount[idx[pays]] = _smaller(payout[idx] * ni / shares[idx], 0.2 * price[idx])[pays]

        # index list at the close of the first trading day of each month (see _index_members)
        if month_start[t]:
            eligible = live & (days_left != 0)
            caps = np.where(eligible, price * shares, -np.inf)
            members = _index_members(caps, members, settings.index_size, quarter_start[t])
            top = np.flatnonzero(members)
            constituents.append((t, top, caps[top] / caps[top].sum()))

        # countdown to delisting: the day after the last trading day, holders get the value
        on_way = live & (days_left >= 0)
        for i in np.flatnonzero(on_way & (days_left == 0)):
            status[i] = 2
            if t + 1 < T:
                kind = "bankruptcy" if delist_kind[i] == 1 else "takeover"
                value = (
                    float(delist_value[i] * price[i])
                    if kind == "bankruptcy"
                    else float(delist_value[i])
                )
                actions.append((t + 1, i, "delisting", value))
                events.append((tickers[i], cal[t + 1], kind, value))
        days_left[on_way] -= 1

    meta = pd.DataFrame(
        {
            "ticker": tickers,
            "name": names,
            "sector": [sector_names[s] for s in sector],
            "isin": [f"ZZ{i:09d}{i % 10}" for i in range(N)],
            "currency": "USD",
            "listing_date": [cal[int(d)] for d in ipo_day],
            "exchange": settings.calendar,
        }
    )
    del eps, gap_eps, hl_eps, vol_eps  # (the shocks are spent: memory for the tables)
    return _assemble(settings, cal, meta, out, actions, fundamentals, constituents, events, regimes)


def _index_members(caps: np.ndarray, members: np.ndarray, size: int, review: bool) -> np.ndarray:
    """The index's members after a list day, by market cap with a buffer, as index providers do.

    At a quarterly review a member stays while it ranks within the top size x (1 + BUFFER), and a
    non-member joins when it ranks within the top size x (1 - BUFFER); the list is then filled or
    cut by rank to `size`. Between reviews only a member that is gone (delisted or about to be) is
    replaced, by the largest non-member. Names with caps of -inf are not eligible."""
    n_eligible = int(np.isfinite(caps).sum())
    size = min(size, n_eligible)
    order = np.argsort(-caps, kind="stable")
    rank = np.empty(len(caps), dtype=np.int64)
    rank[order] = np.arange(len(caps))
    keep = members & np.isfinite(caps)
    if review or not members.any():
        keep &= rank < size * (1 + INDEX_BUFFER)
        keep |= rank < size * (1 - INDEX_BUFFER)
    chosen = order[keep[order]][:size]  # by rank, at most size
    if len(chosen) < size:
        extra = order[~keep[order] & np.isfinite(caps[order])][: size - len(chosen)]
        chosen = np.r_[chosen, extra]
    out = np.zeros(len(caps), dtype=bool)
    out[chosen] = True
    return out
