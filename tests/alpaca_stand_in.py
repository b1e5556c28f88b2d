"""A stand-in for Alpaca's trading API at its HTTP boundary, for the live account's alpaca broker.

alpaca-py (the real package) sends its requests here (url_override) as it would to
paper-api.alpaca.markets: POST /v2/orders, GET /v2/orders:by_client_order_id, with the key
headers. Orders are held as Alpaca holds them (a duplicate client_order_id is refused with 422,
an unknown one is 404) and stay "accepted" until the test opens the market (`fill`), which fills
each at the price it is given: whole, in part (then the rest expires), or not at all (expired).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from .http_stand_in import JSONHandler

KEY, SECRET = "PKTEST", "secret"


class Exchange:
    def __init__(self) -> None:
        self.orders: dict[str, dict] = {}  # by client_order_id
        self.posts: list[str] = []  # client_order_ids as POSTed (accepted or not)
        self.down = 0  # the next this many requests are answered 503
        self.requests = 0
        self.fail_at: set[int] = set()  # request numbers (from 1) answered 503

    def order(self, body: dict) -> dict:
        now = dt.datetime.now(dt.UTC).isoformat()
        return {
            "id": str(uuid.uuid4()), "client_order_id": body["client_order_id"],
            "created_at": now, "updated_at": now, "submitted_at": now,
            "asset_id": str(uuid.uuid4()), "symbol": body["symbol"], "asset_class": "us_equity",
            "qty": str(body["qty"]), "filled_qty": "0", "filled_avg_price": None,
            "order_class": "simple", "order_type": "market", "type": "market",
            "side": body["side"], "time_in_force": body["time_in_force"], "status": "accepted",
            "extended_hours": False,
        }  # fmt: skip

    def fill(self, prices: dict[str, float], share: dict[str, float] | None = None) -> None:
        """The open: each accepted order fills at prices[symbol] (share[symbol] of it, the
        rest expiring); one without a price expires unfilled."""
        for order in self.orders.values():
            if order["status"] != "accepted":
                continue
            symbol = order["symbol"]
            if symbol not in prices:
                order["status"] = "expired"
                continue
            part = (share or {}).get(symbol, 1.0)
            order["filled_qty"] = repr(float(order["qty"]) * part)
            order["filled_avg_price"] = repr(prices[symbol])
            order["status"] = "filled" if part == 1.0 else "expired"


class Handler(JSONHandler):
    exchange: Exchange

    def _allowed(self) -> bool:
        self.exchange.requests += 1
        if self.exchange.requests in self.exchange.fail_at:
            self._send(503, {"code": 50300000, "message": "service unavailable"})
            return False
        if self.exchange.down > 0:
            self.exchange.down -= 1
            self._send(503, {"code": 50300000, "message": "service unavailable"})
            return False
        if (self.headers.get("APCA-API-KEY-ID"), self.headers.get("APCA-API-SECRET-KEY")) != (
            KEY,
            SECRET,
        ):
            self._send(401, {"code": 40110000, "message": "request is not authorized"})
            return False
        return True

    def do_POST(self) -> None:  # noqa: N802
        if not self._allowed():
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if urlparse(self.path).path != "/v2/orders":
            return self._send(404, {"code": 40400000, "message": "not found"})
        self.exchange.posts.append(body["client_order_id"])
        if body["client_order_id"] in self.exchange.orders:
            return self._send(422, {"code": 40010001, "message": "client_order_id must be unique"})
        order = self.exchange.order(body)
        self.exchange.orders[body["client_order_id"]] = order
        return self._send(200, order)

    def do_GET(self) -> None:  # noqa: N802
        if not self._allowed():
            return
        url = urlparse(self.path)
        if url.path != "/v2/orders:by_client_order_id":
            return self._send(404, {"code": 40400000, "message": "not found"})
        key = parse_qs(url.query).get("client_order_id", [""])[0]
        order = self.exchange.orders.get(key)
        if order is None:
            return self._send(404, {"code": 40410000, "message": "order not found"})
        return self._send(200, order)


class StandIn:
    def __init__(self) -> None:
        self.exchange = Exchange()
        handler = type("H", (Handler,), {"exchange": self.exchange})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
