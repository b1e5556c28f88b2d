"""The investor's page: pick a theme, enter an amount or upload holdings, get the orders.

    pip install -e ".[web]"
    python -m equity_backtest.investor serve            # http://127.0.0.1:8050

A local web page over the same functions as the command-line tool (`planner.plan`), so the
orders are exactly the ones `python -m equity_backtest.investor` gives for the same inputs. Each
bundled theme is shown with its backtest on the current data next to the index's (annual return,
volatility, worst drawdown, a small equity curve), computed by the project's engine once per
dataset version and theme and cached under `results/.investor_page/`.

Server-rendered HTML from Flask and Jinja2 with no scripts and nothing from a CDN. Uploads are
limited to MAX_UPLOAD bytes, kept in memory or a temporary file that is removed at once, and their
names never become paths; every mistake is a message on the page naming the row and field.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import dataclasses
import hashlib
import ipaddress
import json
import logging
import math
import re
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from ..config import Parameters
from ..data.holdings import read_holdings
from ..data.panel import Panel, load_panel
from ..errors import BadInputError
from ..evaluation import metrics as m
from ..evaluation.returns import load_run
from ..infra.storage import atomic_write_text, spreadsheet_safe
from ..run.runner import run_single
from . import planner

log = logging.getLogger(__name__)
_THOUSANDS = re.compile(r"\d{1,3}(,\d{3})+(\.\d*)?")
MAX_UPLOAD = 1_000_000  # bytes: a holdings file of ten thousand rows is far below this
HIDDEN_THEMES = ("llm",)  # needs a model and a decision log, not a page visitor's choice
ORDER_COLUMNS = [
    ("action", "Action"),
    ("stock", "Stock"),
    ("name", "Name"),
    ("shares_now", "Shares now"),
    ("trade", "Shares to trade"),
    ("shares_target", "Target shares"),
    ("price", "Price"),
    ("trade_value", "Value"),
    ("estimated_cost", "Estimated cost"),
]


@dataclasses.dataclass
class ThemeCard:
    name: str
    title: str
    sentence: str
    figures: dict | None  # annual return, volatility, worst drawdown: theme and index
    chart: str  # inline SVG


def themes() -> list[tuple[str, str, str]]:
    """(name, title, one sentence in plain words) for every bundled theme shown on the page:
    the title is the docstring's words before its first colon, the sentence what follows, to
    its first full stop, with the module's settings given as their values and N for the number
    of stocks the visitor chooses."""
    out = []
    for path in sorted(planner.STRATEGIES.glob("*.py")):
        if path.stem in HIDDEN_THEMES:
            continue
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        doc = " ".join((ast.get_docstring(tree) or "").split())
        title, _, rest = doc.partition(": ") if ": " in doc.split(". ")[0] else ("", "", doc)
        sentence = re.split(r"(?<!\bi\.e)(?<!\be\.g)\.(?:\s|$)", rest, maxsplit=1)[0].strip()
        for name, value in _constants(tree).items():
            sentence = re.sub(rf"\b{name} trading days\b", f"{value} trading days", sentence)
            sentence = re.sub(rf"\b{name} days\b", f"{value} trading days", sentence)
            sentence = re.sub(rf"\(?\b{name}\b\)?", f"{value}", sentence)
        sentence = re.sub(r"\bTOP_N\b", "N", sentence)  # N: the number of stocks chosen
        # a setting the sentence names but the file does not set: its aside goes
        sentence = re.sub(r"\s*\([^()]*\b[A-Z][A-Z_]{2,}\b[^()]*\)", "", sentence)
        title = title or path.stem.replace("_", " ")
        out.append(
            (path.stem, title[:1].upper() + title[1:], sentence[:1].upper() + sentence[1:] + ".")
        )
    return out


def _constants(tree: ast.Module) -> dict[str, int | float]:
    """A strategy file's upper-case number settings other than TOP_N (DAYS = 252, ...)."""
    found = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id.isupper()
            and node.targets[0].id != "TOP_N"
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, int | float)
        ):
            found[node.targets[0].id] = node.value.value
    return found


def _theme_params(params: Parameters, theme: str) -> Parameters:
    """The backtest behind a card: parameters.py's window and costs, the theme's own schedule
    (the Magic Formula quarterly, as its docstring says)."""
    rebalance = "quarterly" if theme == "magic_formula" else params.rebalance
    return params.replace(algorithm=str(planner.theme_path(theme)), rebalance=rebalance)


def theme_figures(params: Parameters, theme: str, version: str, cache: Path) -> dict:
    """A theme's backtest on the current dataset version, from the cache or computed now."""
    p = _theme_params(params, theme)
    key = hashlib.sha256(
        json.dumps({k: str(v) for k, v in p.as_dict().items()}, sort_keys=True).encode()
    ).hexdigest()[:12]
    path = cache / version / f"{theme}-{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    with tempfile.TemporaryDirectory(prefix="investor_page_") as tmp:
        run = run_single(
            p.replace(results_dir=tmp, checkpoint_days=0),
            Path("parameters.py"),
            Path(tmp) / theme,
        )
        data = load_run(run.run_dir)
    r, b = data.returns.to_numpy(), data.benchmark.fillna(0.0).to_numpy()
    wealth = pd.Series(np.cumprod(1 + r), index=data.returns.index)
    index = pd.Series(np.cumprod(1 + b), index=data.returns.index)
    monthly = pd.DataFrame({"theme": wealth, "index": index}).resample("ME").last()
    figures = {
        "theme": _figures(r, data.rf_daily, data.periods),
        "index": _figures(b, data.rf_daily, data.periods),
        "start": f"{data.returns.index[0]:%Y-%m-%d}",
        "end": f"{data.returns.index[-1]:%Y-%m-%d}",
        "rebalance": p.rebalance,
        "costs": f"spread {p.spread_bps:g} bps, slippage {p.slippage_bps:g} bps, commission "
        f"{p.commission_rate * 1e4:g} bps (minimum {p.commission_min:g})",
        "curve": {k: [float(v) for v in monthly[k]] for k in ("theme", "index")},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(figures))
    return figures


def _figures(r: np.ndarray, rf: float, periods: int) -> dict:
    return {
        "annual_return": m.annual_return(r, periods),
        "annual_volatility": m.annual_volatility(r, periods),
        "max_drawdown": m.max_drawdown(r),
    }


def svg_chart(curve: dict, width: int = 260, height: int = 90) -> str:
    """A small equity-curve chart (theme and index, growth of 1) as inline SVG: no scripts."""
    series = [np.asarray(curve[k], dtype=float) for k in ("theme", "index")]
    values = np.concatenate([s[np.isfinite(s)] for s in series])
    if not len(values):
        return ""
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo or 1.0

    def points(s: np.ndarray) -> str:
        n = max(len(s) - 1, 1)
        return " ".join(
            f"{i * width / n:.1f},{height - (v - lo) / span * height:.1f}"
            for i, v in enumerate(s)
            if np.isfinite(v)
        )

    return (
        f'<svg class="curve" viewBox="0 -2 {width} {height + 4}" width="{width}" '
        f'height="{height}" role="img" aria-label="growth of 1: theme and index">'
        f'<polyline fill="none" stroke="#bbb" stroke-width="1.5" points="{points(series[1])}"/>'
        f'<polyline fill="none" stroke="#1f5fa8" stroke-width="2" points="{points(series[0])}"/>'
        "</svg>"
    )


def parse_amount(text: str) -> float:
    """The amount field: a number, 0 or more, at most planner.MAX_AMOUNT. Commas are read only
    as thousands separators (25,000 or 1,234.50); a decimal comma (1000,50) is refused rather
    than guessed."""
    cleaned = (text or "").strip().replace("_", "")
    if cleaned == "":
        return 0.0
    if "," in cleaned:
        if not _THOUSANDS.fullmatch(cleaned):
            raise BadInputError(
                f"Amount to invest: {text!r} is not a number; write decimals with a point "
                "(1000.50) and thousands with commas (25,000)"
            )
        cleaned = cleaned.replace(",", "")
    try:
        value = float(cleaned)
    except ValueError:
        raise BadInputError(f"Amount to invest: {text!r} is not a number") from None
    if not math.isfinite(value) or not 0 <= value <= planner.MAX_AMOUNT:
        raise BadInputError(
            f"Amount to invest: {text!r} must be a number from 0 to {planner.MAX_AMOUNT:,.0f}"
        )
    return value


def is_loopback(host: str) -> bool:
    """Whether `host` names this computer only (127.0.0.1, ::1, localhost)."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_checker(bound: str):
    """The Host names a request may carry, given the address the page is bound to. On this
    computer only: loopback addresses and localhost, so a web site whose name was rebound to
    127.0.0.1 (DNS rebinding) is refused. Served to the network (--allow-network): also IP
    addresses and this computer's own names; any other name is still refused."""
    names = {"localhost", bound.strip("[]").lower()}
    if not is_loopback(bound):
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}

    def allowed(hostname: str | None) -> bool:
        if not hostname:
            return False
        hostname = hostname.lower()
        if hostname in names:
            return True
        try:
            address = ipaddress.ip_address(hostname)
        except ValueError:
            return False
        return address.is_loopback or not is_loopback(bound)

    return allowed


def parse_stocks(text: str, largest: int) -> int:
    try:
        value = int((text or "").strip())
    except ValueError:
        raise BadInputError(f"Number of stocks: {text!r} is not a whole number") from None
    if not 1 <= value <= largest:
        raise BadInputError(f"Number of stocks: {value} must be between 1 and {largest}")
    return value


def read_upload(storage, allow_short: bool) -> pd.Series | None:
    """The uploaded holdings file through the command-line tool's reader. The upload is written
    to a private temporary file (never to a path derived from its name) and removed at once."""
    if storage is None or not storage.filename:
        return None
    shown = Path(storage.filename).name or "holdings.csv"  # only for messages
    data = storage.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise BadInputError(
            f"holdings file {shown!r} is larger than {MAX_UPLOAD // 1_000_000} MB; upload a CSV "
            "with columns stock, shares (and optionally amount invested)"
        )
    with tempfile.TemporaryDirectory(prefix="holdings_") as tmp:
        path = Path(tmp) / "holdings.csv"
        path.write_bytes(data)
        try:
            holdings = read_holdings(path, allow_short)
        except BadInputError as exc:
            raise BadInputError(str(exc).replace(str(path), repr(shown))) from None
    holdings.attrs["path"] = repr(shown)
    return holdings


def orders_csv(p: planner.Plan) -> str:
    """Exactly the CSV the command-line tool writes for the same plan (text cells that a
    spreadsheet would run as formulas neutralised, as there)."""
    return spreadsheet_safe(p.orders).to_csv(
        index=False, lineterminator="\n", date_format="%Y-%m-%d"
    )


def create_app(
    params: Parameters,
    panel: Panel,
    cache: Path,
    today: pd.Timestamp | None = None,
    bound: str = "127.0.0.1",
):
    """The Flask app over one dataset version (the latest) and its cached theme backtests.
    `bound`: the address it is served on, which decides the Host names it answers to."""
    from flask import Flask, render_template, request
    from werkzeug.exceptions import RequestEntityTooLarge

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD + 64_000  # the file plus the form fields
    today = today or pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()
    last = panel.dates[-1]
    cards = []
    for name, title, sentence in themes():
        try:
            figures = theme_figures(params, name, panel.dataset_version, cache)
        except Exception as exc:  # a theme whose data is missing is shown without figures
            log.warning("theme %s: no backtest (%s)", name, exc)
            figures = None
        cards.append(
            ThemeCard(
                name, title, sentence, figures, svg_chart(figures["curve"]) if figures else ""
            )
        )
    members = int(panel.members(len(panel.dates) - 1).sum())
    context = {
        "cards": cards,
        "data_date": f"{last:%Y-%m-%d}",
        "data_age_days": int((today - last).days),
        "stale": planner.staleness(last, today),
        "version": panel.dataset_version,
        "source": panel.source,
        "index": panel.index,
        "members": members,
        "columns": ORDER_COLUMNS,
        "max_upload_mb": MAX_UPLOAD / 1_000_000,
    }

    def page(form: dict | None = None, **extra):
        form = form or {
            "theme": "magic_formula",
            "amount": "10000",
            "stocks": "20",
            "shares": "fractional",
        }
        return render_template("investor.html", form=form, **context, **extra)

    host_allowed = host_checker(bound)

    @app.before_request
    def this_site_only():
        """Refuse a request for another host name (DNS rebinding) and one sent by another
        site's page (a foreign Origin): any site a user visits can make the browser send both."""
        if not host_allowed(urlsplit("//" + request.host).hostname):
            return _refused(f"this page does not answer to the host name {request.host!r}")
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
            return _refused(f"requests from {origin!r} are not accepted; open the page itself")
        return None

    @app.get("/")
    def index():
        return page()

    @app.post("/plan")
    def make_plan():
        form = {k: request.form.get(k, "") for k in ("theme", "amount", "stocks", "shares")}
        try:
            theme = form["theme"]
            if theme not in {c.name for c in cards}:
                raise BadInputError(f"Theme: {theme!r} is not one of the themes on this page")
            amount = parse_amount(form["amount"])
            stocks = parse_stocks(form["stocks"], max(members, 1))
            whole = form["shares"] == "whole"
            holdings = read_upload(request.files.get("holdings"), params.allow_short)
            p = planner.plan(
                panel,
                params.replace(fractional_shares=not whole),
                planner.theme_path(theme),
                stocks,
                amount,
                holdings,
            )
        except BadInputError as exc:
            return page(form, error=str(exc)), 400
        csv_text = orders_csv(p)
        rows = p.orders.to_dict("records")
        return page(
            form,
            plan=p,
            rows=rows,
            summary=p.summary,
            csv_href="data:text/csv;base64," + base64.b64encode(csv_text.encode()).decode(),
        )

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc):
        return page(
            error=f"The upload is larger than {MAX_UPLOAD // 1_000_000} MB; a holdings file is a "
            "small CSV with columns stock, shares (and optionally amount invested)."
        ), 413

    @app.template_filter("num")
    def num(value, digits: int = 2):
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return ""
        if isinstance(value, float | int | np.floating | np.integer):
            return f"{value:,.{digits}f}"
        return str(value)

    @app.template_filter("pct")
    def pct(value):
        return "" if value is None or not math.isfinite(value) else f"{value:.1%}"

    return app


def _refused(message: str):
    return message + "\n", 403, {"Content-Type": "text/plain; charset=utf-8"}


def serve(params: Parameters, host: str = "127.0.0.1", port: int = 8050) -> None:
    """Build the app on the latest dataset version, print the address, serve until stopped."""
    try:
        from werkzeug.serving import make_server
    except ImportError:
        raise BadInputError('the investor\'s page needs Flask: pip install -e ".[web]"') from None
    panel = load_panel(params.replace(end=pd.Timestamp.max.date()))
    cache = Path(params.results_dir) / ".investor_page"
    print(f"preparing the theme backtests on dataset {panel.dataset_version} ...", flush=True)
    app = create_app(params, panel, cache, bound=host)
    server = make_server(host, port, app, threaded=True)
    print(
        f"Serving the investor's page on http://{host}:{server.server_port}/ (Ctrl+C to stop)",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
