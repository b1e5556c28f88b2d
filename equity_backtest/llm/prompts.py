"""Point-in-time prompts (L1): statements and prices as public at a close, rendered through a
versioned template file.

A prompt is built from the runtime view only, so it cannot hold anything published after its
as-of date: the last `periods` reported quarters of each statement line (restated periods at their
latest public version) and month-end closes over the last year.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from ..engine.view import as_of_value
from ..errors import BadInputError

TEMPLATES = Path(__file__).parent / "templates"
INCOME = ("revenue", "gross_profit", "ebit", "net_income")
BALANCE = (
    "total_assets",
    "current_assets",
    "cash",
    "net_fixed_assets",
    "total_debt",
    "current_liabilities",
    "total_equity",
    "shares_outstanding",
)
CASH_FLOW = ("operating_cash_flow", "capex")
# the statement lines a prompt shows, per section (llm_statement_items overrides them)
STATEMENTS = {"income_statement": INCOME, "balance_sheet": BALANCE, "cash_flow": CASH_FLOW}


@dataclasses.dataclass(frozen=True)
class Template:
    version: str
    anonymised: bool
    system: str
    user: str


@dataclasses.dataclass(frozen=True)
class Prompt:
    """What a model is asked about one company on one date."""

    ticker: str
    as_of: str  # YYYY-MM-DD
    version: str
    system: str
    user: str
    dataset_version: str = ""  # recorded with the decision (the prompt hash is in its key)

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]

    @property
    def sha(self) -> str:
        """A short hash of exactly what the model reads (system and user text)."""
        return hashlib.sha256(f"{self.system}\n\n{self.user}".encode()).hexdigest()[:16]


def load_template(name: str) -> Template:
    """A template by version name (templates/<name>.toml) or by path to a .toml file."""
    path = Path(name) if name.endswith(".toml") else TEMPLATES / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in TEMPLATES.glob("*.toml")))
        raise BadInputError(f"prompt template {name!r} not found (known: {known})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return Template(data["version"], bool(data["anonymised"]), data["system"], data["user"])
    except (tomllib.TOMLDecodeError, KeyError) as exc:
        raise BadInputError(f"prompt template {path}: {exc}") from None


def build_prompts(
    view, template: Template, tickers=None, periods: int = 4, statements=None
) -> list[Prompt]:
    """One prompt per ticker (default: the view's universe) with what is public at its close.
    `statements` maps each section (income_statement, balance_sheet, cash_flow) to the metrics it
    shows (default STATEMENTS). Tickers with no reported statements yet are left out: there is
    nothing to judge. A name or sector that changed over time is the one in effect on the as-of
    date when the metadata has its history (name_history, sector_history)."""
    statements = {k: tuple(v) for k, v in (statements or STATEMENTS).items()}
    tickers = list(view.universe if tickers is None else tickers)
    metrics = dict.fromkeys(m for items in statements.values() for m in items)
    lines = {m: view.fundamentals_history(m, periods, tickers) for m in metrics}
    if "shares_outstanding" in lines:  # in today's shares too, as the prices are
        lines["shares_outstanding"] = _in_todays_shares(lines["shares_outstanding"], view, tickers)
    # in today's shares: a 4:1 split inside the year must not read as a 75% fall
    closes = view.history("close", days=260, tickers=tickers, split_adjusted=True)
    month_end = closes.groupby(closes.index.to_period("M")).tail(1).iloc[-12:]
    meta = view.metadata.set_index("ticker") if "ticker" in view.metadata else view.metadata
    as_of = f"{view.date:%Y-%m-%d}"
    out = []
    for ticker in tickers:
        table = _statement_table(lines, ticker)
        if table.empty:
            continue
        prices = month_end[ticker].dropna() if ticker in month_end else pd.Series(dtype=float)
        fields = _render_fields(table, prices, template.anonymised, statements)
        info = meta.loc[ticker] if ticker in meta.index else {}
        fields.update(
            ticker=ticker,
            name=as_of_value(info.get("name_history"), view.date) or str(info.get("name", ticker)),
            sector=as_of_value(info.get("sector_history"), view.date)
            or str(info.get("sector", "unknown")),
            as_of=as_of,
        )
        out.append(
            Prompt(
                ticker,
                as_of,
                template.version,
                template.system,
                template.user.format(**fields),
                getattr(view, "dataset_version", ""),
            )
        )
    return out


def _in_todays_shares(frame: pd.DataFrame, view, tickers) -> pd.DataFrame:
    """Share counts restated for the splits between each period's end and the as-of close, so
    that shares and split-adjusted prices give the market cap (a 2:1 split does not read as the
    share count doubling)."""
    splits = view.splits(tickers) if hasattr(view, "splits") else pd.DataFrame()
    if frame.empty or splits.empty:
        return frame
    out = frame.copy()
    factor = np.ones(len(out))
    for ticker, date, ratio in splits.itertuples(index=False):
        factor *= np.where(
            (out["ticker"].to_numpy() == ticker) & (out["period_end"].to_numpy() < date), ratio, 1.0
        )
    out["value"] = out["value"].to_numpy(dtype=float) * factor
    return out


def _statement_table(lines: dict[str, pd.DataFrame], ticker: str) -> pd.DataFrame:
    """Rows: statement lines; columns: period ends, oldest first."""
    rows = {}
    for metric, frame in lines.items():
        mine = frame[frame["ticker"] == ticker]
        if len(mine):
            rows[metric] = pd.Series(mine["value"].to_numpy(), index=mine["period_end"].to_numpy())
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).T.sort_index(axis=1)


def _render_fields(
    table: pd.DataFrame, prices: pd.Series, anonymised: bool, statements: dict
) -> dict[str, str]:
    n = table.shape[1]
    if anonymised:
        headers = ["t" if k == 0 else f"t-{k}" for k in range(n - 1, -1, -1)]
        table = _as_percentages(table, statements)
        money_unit = "% of revenue; revenue as % of revenue at t"
        price_index = [f"m-{k}" if k else "m" for k in range(len(prices) - 1, -1, -1)]
        price_values = prices / prices.iloc[0] * 100 if len(prices) else prices
        price_unit = "rebased: first month = 100"
    else:
        headers = [f"{pd.Timestamp(c):%Y-%m-%d}" for c in table.columns]
        table = table / 1e6
        money_unit = "millions"
        price_index = [f"{d:%Y-%m}" for d in prices.index]
        price_values = prices
        price_unit = "price per share, adjusted for splits up to the as-of date"

    def render(metrics) -> str:
        rows = [m for m in metrics if m in table.index]
        if not rows:
            return "(not reported)"
        width = max(len(m) for m in rows)
        head = " " * width + "  " + "  ".join(f"{h:>12}" for h in headers)
        body = [
            f"{m:<{width}}  " + "  ".join(_number(v) for v in table.loc[m].to_numpy()) for m in rows
        ]
        return "\n".join([head, *body])

    return {
        "income_statement": render(statements["income_statement"]),
        "balance_sheet": render(statements["balance_sheet"]),
        "balance_unit": (
            "% of total assets; total assets and shares as % of their value at t"
            if anonymised
            else "millions; shares in millions"
        ),
        "cash_flow": render(statements["cash_flow"]),
        "money_unit": money_unit,
        "prices": "  ".join(f"{i}: {v:.2f}" for i, v in zip(price_index, price_values, strict=True))
        or "(no prices)",
        "price_unit": price_unit,
    }


def _as_percentages(table: pd.DataFrame, statements: dict) -> pd.DataFrame:
    """Income and cash-flow lines as % of the period's revenue, balance-sheet lines as % of the
    period's total assets; revenue and total assets themselves as % of their latest value, so
    growth survives the scaling."""
    out = table.astype(float).copy()
    flows = statements["income_statement"] + statements["cash_flow"]
    for scale, metrics in (("revenue", flows), ("total_assets", statements["balance_sheet"])):
        if scale not in table.index:
            out = out.drop(index=[m for m in metrics if m in out.index])
            continue
        base = table.loc[scale].astype(float).replace(0, np.nan)
        for m in metrics:
            if m in out.index and m != scale:
                out.loc[m] = table.loc[m] / base * 100
        out.loc[scale] = base / base.iloc[-1] * 100
    if "shares_outstanding" in out.index:
        shares = table.loc["shares_outstanding"].astype(float)
        out.loc["shares_outstanding"] = shares / shares.iloc[-1] * 100
    return out


def _number(v: float) -> str:
    return f"{'n/a':>12}" if not np.isfinite(v) else f"{v:>12,.1f}"
