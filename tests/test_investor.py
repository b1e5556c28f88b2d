"""P1-P3: the investor's rebalancing tool."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from equity_backtest.data.holdings import read_holdings
from equity_backtest.data.panel import load_panel
from equity_backtest.errors import EXIT_BAD_INPUT, BadInputError
from equity_backtest.investor.planner import plan, theme_path
from tests.conftest import REPO, params_for, run_script


@pytest.fixture(scope="module")
def latest(small_store):
    params = params_for(small_store, end=pd.Timestamp("2100-01-01").date(), cash_buffer=0.0)
    return load_panel(params), params


def _holdings(panel, n=3) -> pd.Series:
    t = len(panel.dates) - 1
    members = panel.tickers[panel.members(t)][:n]
    return pd.Series([10.0, 25.5, 7.25][:n], index=members)


def _after(panel, p):
    """Apply the orders to the holdings: final shares and prices per stock."""
    t = len(panel.dates) - 1
    price = pd.Series(panel.mark[t], index=panel.tickers)
    final = p.orders.set_index("stock")["shares_now"] + p.orders.set_index("stock")["trade"]
    return final, price[final.index]


@pytest.mark.parametrize("fractional", [True, False])
def test_orders_reach_the_target_weights_and_cash_stays_positive(latest, fractional):
    panel, params = latest
    params = params.replace(fractional_shares=fractional, commission_min=1.0)
    p = plan(panel, params, theme_path("price_to_book"), 5, 10_000.0, _holdings(panel))
    final, price = _after(panel, p)
    value = float((final * price).sum()) + p.summary["cash_left"]
    assert p.summary["cash_left"] >= 0 and p.summary["stocks"] == 5
    held = final[final > 0]
    assert len(held) == 5
    weights = held * price[held.index] / value
    if fractional:  # exactly the target, less what the costs took
        assert np.allclose(weights, weights.iloc[0], rtol=1e-9)
        assert weights.sum() == pytest.approx(
            1 - p.summary["cash_left"] / value
        )  # the rest is cash
    else:  # within one share's rounding of the equal-weight target
        target = value / 5
        assert (
            (held * price[held.index] - target).abs()
            <= price[held.index] + p.summary["estimated_costs"]
        ).all()
    sold = p.orders[p.orders["action"] == "SELL"]
    assert (sold["shares_target"] == 0).all()  # holdings outside the theme are sold


def test_buy_list_from_cash_only(latest):
    panel, params = latest
    p = plan(
        panel, params.replace(fractional_shares=True), theme_path("momentum_12_1"), 4, 10_000.0
    )
    buys = p.orders[p.orders["action"] == "BUY"]
    assert (
        len(buys) == 4
        and buys["trade_value"].sum() + p.summary["estimated_costs"] <= 10_000.0 + 1e-6
    )
    assert (p.orders["action"] != "SELL").all()


@pytest.mark.parametrize(
    "text,message",
    [
        ("stock,shares\nNOPE,5\n", r"h.csv, row 2, field .stock.: .NOPE. has no price"),
        ("stock,shares\nAAA,-5\n", "negative"),
        ("stock,shares\nAAA,5\nAAA,6\n", "listed twice"),
        ("stock;shares\nAAA;5\n", "no column"),
        ("", "the file is empty"),
    ],
)
def test_bad_holdings_files_are_named(tmp_path, latest, text, message):
    panel, params = latest
    path = tmp_path / "h.csv"
    path.write_text(text.replace("AAA", panel.tickers[panel.members(len(panel.dates) - 1)][0]))
    with pytest.raises(BadInputError, match=message):
        plan(panel, params, theme_path("quality"), 3, 0.0, read_holdings(path))


def test_unknown_theme_is_named():
    with pytest.raises(BadInputError, match="unknown theme 'valu'"):
        theme_path("valu")


@pytest.mark.slow
def test_the_command_writes_csv_and_prints_a_table(project):
    members = pd.read_csv(sorted((project / "datalog").glob("*constituent_list*"))[-1])["ticker"][
        :2
    ].tolist()
    (project / "h.csv").write_text(
        f"stock,shares,amount invested\n{members[0]},10,500\n{members[1]},3.5,200\n"
    )
    proc = run_script(
        project,
        "-m",
        "equity_backtest.investor",
        "--theme",
        "magic_formula",
        "--stocks",
        "5",
        "--invest",
        "5000",
        "--holdings",
        "h.csv",
        "--out",
        "orders.csv",
    )
    assert "cash left" in proc.stdout and "BUY" in proc.stdout
    orders = pd.read_csv(project / "orders.csv")
    assert {"stock", "action", "trade", "shares_target", "estimated_cost"} <= set(orders.columns)
    (project / "bad.csv").write_text("stock,shares\nZZZZ,1\n")
    bad = run_script(
        project,
        "-m",
        "equity_backtest.investor",
        "--theme",
        "quality",
        "--holdings",
        "bad.csv",
        check=False,
    )
    assert bad.returncode == EXIT_BAD_INPUT and "ZZZZ" in bad.stderr
    assert (REPO / "examples" / "holdings.csv").is_file()
