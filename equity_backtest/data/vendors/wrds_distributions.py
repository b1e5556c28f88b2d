"""CRSP distributions -> the corporate actions the engine books, kind by kind (D9).

Every row CRSP has for a security in the window is read, and each is either applied or logged
as unapplied under its kind's name, never dropped: the quality report counts the unapplied ones.
The rule is the one CRSP's own holding-period return uses: the cash amount (DIVAMT, DISDIVAMT) is
paid to holders on the ex-date, and the price factor (FACPR, DISFACPR) multiplies the shares
(1 + factor). So ordinary and special dividends, liquidating payments, returns of capital and
capital gains are cash; a spin-off or other property is paid at the cash value CRSP puts on it;
splits and stock dividends change the share count.

Unapplied, by kind (vocabulary.UNAPPLIED_DISTRIBUTIONS):
- "reorganisation": a factor of -1, the share exchanged, cashed out or liquidated; its delisting
  record (CRSP's delisting return includes what holders received) ends the position, so paying
  the row's amount too would count it twice;
- "rights": subscription rights (legacy code 4xxx) that CRSP gives no cash value;
- "notice": legacy codes 6xxx (a change in shares outstanding) and 7xxx (an announcement for a
  dropped issue), which pay holders nothing;
- "unvalued": any other row with neither an amount nor a factor.

Legacy DISTCD: the first digit is the event (1 ordinary dividend, 2 liquidating, 3 exchange or
reorganisation, 4 rights, 5 split or stock dividend, 6 issuance notice, 7 announcement), per
CRSP's distribution-code page. WRDS stores it as DOUBLE PRECISION, so it is read as a number.
CIZ's DISTYPE names (CD, SD, ROC, CG, FRS, ...) are logged in 01's counts; the treatment goes by
the amounts, as CRSP's return does, so a type not listed in our docs is treated by its amounts.
"""

from __future__ import annotations

import collections
import logging

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

_LEGACY_EVENT = {
    1: "ordinary dividend",
    2: "liquidating payment",
    3: "exchange, spin-off or reorganisation",
    4: "subscription rights",
    5: "split or stock dividend",
    6: "issuance notice",
    7: "announcement for a dropped issue",
}


def _legacy_event(code) -> int:
    try:
        return int(float(code) // 1000)
    except (TypeError, ValueError):
        return 0


def kind_of(code, wrds_format: str) -> str:
    """A distribution's kind in words, for 01's counts."""
    if wrds_format == "legacy":
        event = _legacy_event(code)
        name = _LEGACY_EVENT.get(event, "unknown code")
        special = event == 1 and int(float(code) // 10) % 10 == 7  # third digit 7: extra/special
        return f"{'special dividend' if special else name} ({event}xxx)"
    return f"distype {str(code).strip() or '?'}"


def actions_of(row, wrds_format: str) -> list[tuple[str, float]]:
    """(action, value) pairs one distribution row gives, applied or unapplied."""
    cash = float(row.cash) if pd.notna(row.cash) else np.nan
    factor = float(row.factor) if pd.notna(row.factor) else np.nan
    event = _legacy_event(row.code) if wrds_format == "legacy" else 0
    if event in (6, 7):
        return [("notice", cash if cash > 0 else factor)]
    if factor <= -1:  # the share ends: what it was exchanged for is in its delisting return
        return [("reorganisation", cash if cash > 0 else factor)]
    out = []
    if cash > 0:
        out.append(("dividend", cash))
    if np.isfinite(factor) and factor != 0:
        out.append(("split", 1.0 + factor))
    if not out:
        out.append(("rights" if event == 4 else "unvalued", np.nan))
    return out


def distribution_actions(dist: pd.DataFrame, wrds_format: str) -> list[tuple]:
    """Rows (permno, date, action, value) for every distribution, and a count of each kind and
    of what became of it in 01's log (unapplied kinds as a warning)."""
    rows, counts = [], collections.Counter()
    for r in dist.itertuples(index=False):
        kind = kind_of(r.code, wrds_format)
        for action, value in actions_of(r, wrds_format):
            rows.append((int(r.permno), pd.Timestamp(r.date), action, value))
            counts[kind, action] += 1
    applied = sorted((k, a, n) for (k, a), n in counts.items() if a in ("dividend", "split"))
    unapplied = sorted((k, a, n) for (k, a), n in counts.items() if a not in ("dividend", "split"))
    if applied:
        log.info("distributions applied: %s", "; ".join(f"{n} {k} as {a}" for k, a, n in applied))
    if unapplied:
        log.warning(
            "distributions logged but not applied (counted in the quality report): %s",
            "; ".join(f"{n} {k} ({a})" for k, a, n in unapplied),
        )
    return rows
