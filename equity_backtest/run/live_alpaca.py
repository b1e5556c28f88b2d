"""The `alpaca` broker of a live account (E12): orders sent to Alpaca's trading API through its
official package (alpaca-py), fills read back from it.

After a rebalance bar is journaled, each order goes out as a day market order whose
`client_order_id` is its idempotency key (`<account>:<date>:<ticker>`): before sending, the
order is looked up by that key, so a run that died after the journal line, or whose send failed
half way, sends on the next run only what Alpaca does not have, and never an order twice. Before
the next bar's fills, every order of the decision is looked up again: while any is still open,
the account waits (exit code 2, saying which); once all are final (filled, partly filled then
cancelled or expired, rejected), their filled quantity and average price are booked, with no
commission (Alpaca charges none on US equities), and each order's implementation shortfall is
journaled as with the file broker.

Keys from ALPACA_API_KEY and ALPACA_SECRET_KEY (environment or .env); `live_alpaca_url` points
elsewhere than Alpaca's paper-trading endpoint (the tests' stand-in). No package, no keys, or no
answer: exit code 3 with what to do; what was journaled stays, and the next run goes on.
"""

from __future__ import annotations

import os

import pandas as pd

from ..errors import VendorUnavailableError, WaitingError

FINAL = {"filled", "canceled", "expired", "rejected", "done_for_day", "replaced", "stopped",
         "suspended"}  # fmt: skip


def client(params):
    """A TradingClient for the account (paper trading unless live_alpaca_url says otherwise)."""
    try:
        from alpaca.trading.client import TradingClient
    except ImportError:
        raise VendorUnavailableError(
            "live_broker 'alpaca' needs Alpaca's package: pip install 'equity_backtest[alpaca]'"
        ) from None
    key, secret = os.environ.get("ALPACA_API_KEY", ""), os.environ.get("ALPACA_SECRET_KEY", "")
    if not (key and secret):
        raise VendorUnavailableError(
            "live_broker 'alpaca' needs ALPACA_API_KEY and ALPACA_SECRET_KEY in the environment "
            "or a .env file beside parameters.py (a paper-trading account's keys)"
        )
    return TradingClient(key, secret, paper=True, url_override=params.live_alpaca_url or None)


def _order(trading, key: str):
    """The order Alpaca holds under this client_order_id, or None."""
    from alpaca.common.exceptions import APIError

    try:
        return trading.get_order_by_client_id(key)
    except APIError as exc:
        if exc.status_code == 404:
            return None
        if exc.status_code is None or exc.status_code >= 500:
            raise VendorUnavailableError(_no_answer(exc)) from None
        raise VendorUnavailableError(f"Alpaca refused the look-up of order {key}: {exc}") from None
    except Exception as exc:  # the link
        raise VendorUnavailableError(_no_answer(exc)) from None


def send(trading, orders: list[dict]) -> int:
    """Send each order Alpaca does not hold yet; returns how many were sent."""
    from alpaca.common.exceptions import APIError
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest

    sent = 0
    for order in orders:
        if _order(trading, order["key"]) is not None:
            continue  # sent before (the run that journaled it died, or was cut off)
        request = MarketOrderRequest(
            symbol=order["ticker"],
            qty=abs(order["shares"]),
            side=OrderSide.BUY if order["shares"] > 0 else OrderSide.SELL,
            time_in_force=TimeInForce.DAY,
            client_order_id=order["key"],
        )
        try:
            trading.submit_order(request)
        except APIError as exc:
            if exc.status_code is None or exc.status_code >= 500:
                raise VendorUnavailableError(_no_answer(exc)) from None
            raise VendorUnavailableError(
                f"Alpaca refused order {order['key']} ({exc}); the orders are in the journal "
                "and the next run sends those Alpaca does not hold"
            ) from None
        except Exception as exc:
            raise VendorUnavailableError(_no_answer(exc)) from None
        sent += 1
    return sent


def report(trading, date: str, orders: list[dict]) -> pd.DataFrame:
    """The fills of the orders decided on `date`, once every one is final; BadInputError (the
    account waits) while any is open."""
    rows, open_ = [], []
    for order in orders:
        held = _order(trading, order["key"])
        if held is None:
            raise VendorUnavailableError(
                f"Alpaca has no order {order['key']}: it was never sent; run again to send it"
            )
        status = str(getattr(held.status, "value", held.status))
        if status not in FINAL:
            open_.append(f"{order['ticker']} ({status})")
            continue
        filled = float(held.filled_qty or 0)
        if filled:
            sign = 1.0 if order["shares"] > 0 else -1.0
            rows.append({"ticker": order["ticker"], "shares": sign * filled,
                         "price": float(held.filled_avg_price), "commission": 0.0})  # fmt: skip
    if open_:
        raise WaitingError(
            f"the live account waits for Alpaca to finish the orders decided on {date}: "
            f"{', '.join(open_[:10])} still open; run 03_trade.py --live again after they fill "
            "or expire"
        )
    return pd.DataFrame(rows, columns=["ticker", "shares", "price", "commission"])


def _no_answer(exc: Exception) -> str:
    return (
        f"Alpaca does not answer ({type(exc).__name__}: {exc}); check the network and the keys, "
        "then run 03_trade.py --live again: what was journaled stays, and orders are never sent "
        "twice"
    )
