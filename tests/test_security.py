"""Safe to share and to serve (O7): nothing read from a shared datasets folder runs code, and the
investor's page holds against hostile requests and uploads (docs/operations.md, Security)."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from equity_backtest.data import panel_cache
from equity_backtest.data.holdings import read_holdings
from equity_backtest.data.panel import FundamentalSeries, load_panel
from equity_backtest.errors import BadInputError
from equity_backtest.infra import arraystore
from equity_backtest.infra.remote import pulls
from equity_backtest.infra.storage import spreadsheet_safe
from equity_backtest.investor import page as web
from tests.conftest import REPO, params_for
from tests.test_panel_cache import _same

MARKER = "equity_backtest_security_marker"


class _Planted:
    """What an attacker pickles: unpickling it calls os.system, which writes a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def store(tmp_path, small_store):
    shutil.copytree(small_store / "datasets", tmp_path / "datasets")
    shutil.rmtree(tmp_path / "datasets" / panel_cache.FOLDER, ignore_errors=True)
    return tmp_path


def _entry(store: Path) -> Path:
    (entry,) = (store / "datasets" / panel_cache.FOLDER).iterdir()
    return entry


@pytest.mark.parametrize("planted", ["pickle", "object_array", "foreign_class", "not_json"])
def test_a_planted_cache_entry_runs_nothing_and_is_rebuilt_with_a_warning(store, caplog, planted):
    """Anyone who can write to a shared datasets folder can write its cache. A pickle placed
    where the panel is cached (the old format, which ran code on load), or a panel file that
    asks for raw bytes as Python objects or for a class the reader does not build, is never
    run: the entry is rebuilt from the dataset, with a warning naming it."""
    params = params_for(store)
    built = load_panel(params)
    entry = _entry(store)
    marker = store / MARKER
    if planted == "pickle":
        for p in entry.iterdir():
            p.unlink()
        (entry / "panel.pkl").write_bytes(pickle.dumps(_Planted(marker)))
        (entry / panel_cache.META).write_text(json.dumps({"pickle": "panel.pkl"}))
    else:
        meta = json.loads((entry / panel_cache.META).read_text())
        if planted == "object_array":  # the first array in the buffers file, read as pointers
            meta["tree"]["tuple"][0]["fields"]["mark"]["array"]["dtype"] = "|O"
        elif planted == "foreign_class":
            meta["tree"]["tuple"][0]["dataclass"] = "Popen"
        (entry / panel_cache.META).write_text(
            "not json {" if planted == "not_json" else json.dumps(meta)
        )
    with caplog.at_level(logging.WARNING):
        again = load_panel(params)
    assert not marker.exists()
    _same(built, again)
    said = [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]
    assert len(said) == 1 and str(entry) in said[0] and "rebuilt" in said[0]
    # the rebuilt entry is good again: the next load takes it without a word
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _same(built, load_panel(params))
    assert not [r for r in caplog.records if "could not be read" in r.getMessage()]


def test_the_array_store_round_trips_plain_data_and_refuses_the_rest(tmp_path):
    meta, buffers = tmp_path / "x.json", tmp_path / "x.bin"
    frame = pd.DataFrame(
        {"name": ["a", None, "=b"], "price": [1.5, np.nan, 3.0], "day": pd.date_range("2024-01-01", periods=3)},
        index=pd.Index(["X", "Y", "Z"], name="ticker", dtype=object),
    )  # fmt: skip
    obj = {
        "big": np.arange(50_000.0).reshape(100, 500),  # out of line, in the buffers file
        "small": (np.array([1, 2], dtype=np.int64), np.array([True, False])),
        7: [1, 2.5, float("nan"), float("-inf"), "text", None, True],
        "objects": np.array(["a", None, np.nan, 3], dtype=object),
        "dates": pd.DatetimeIndex(["2024-01-02", "2024-01-03"], name="d"),
        "utc": pd.DatetimeIndex(["2024-01-02 15:30"], tz="UTC"),
        "frame": frame,
        "series": FundamentalSeries(
            np.array([0]), np.array(["2024-03-31"], dtype="datetime64[ns]"), np.array([5]), np.array([1.0])
        ),
    }  # fmt: skip
    arraystore.write(obj, meta, buffers)
    back = arraystore.read(meta, buffers, (FundamentalSeries,))
    np.testing.assert_array_equal(back["big"], obj["big"])
    assert isinstance(back["small"], tuple) and back["small"][1].dtype == bool
    assert (
        back[7][:2] == [1, 2.5]
        and np.isnan(back[7][2])
        and back[7][3:] == [-np.inf, "text", None, True]
    )
    assert (
        back["objects"].dtype == object and back["objects"][0] == "a" and back["objects"][1] is None
    )
    assert back["dates"].equals(obj["dates"]) and back["dates"].name == "d"
    assert back["utc"].equals(obj["utc"])
    pd.testing.assert_frame_equal(back["frame"], frame)
    assert isinstance(back["series"], FundamentalSeries)
    back["big"][0, 0] = -1.0  # copy-on-write: the file is not changed
    assert arraystore.read(meta, buffers, (FundamentalSeries,))["big"][0, 0] == 0.0
    # what the reader is not told to build is refused
    with pytest.raises(arraystore.Unreadable, match="not one this reader builds"):
        arraystore.read(meta, buffers)
    for bad in ({1, 2}, lambda: 0, np.array([object()], dtype=object)):
        with pytest.raises(arraystore.Unstorable):
            arraystore.write({"x": bad}, tmp_path / "y.json", tmp_path / "y.bin")
    tree = json.loads(meta.read_text())
    tree["spans"][0][1] += 8  # past the end of the file
    meta.write_text(json.dumps(tree))
    with pytest.raises(arraystore.Unreadable, match="outside the buffers file"):
        arraystore.read(meta, buffers, (FundamentalSeries,))


def test_hidden_and_escaping_keys_are_never_pulled():
    assert pulls("v000001/market.feather") and pulls("CURRENT")
    for key in (".panel_cache/v1-x/panel.pkl", "v000001/.market.feather.tmp", "../x", "a//b",
                "/etc/passwd", "a/../../b", ""):  # fmt: skip
        assert not pulls(key), key


# --- the investor's page -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory, small_store):
    root = tmp_path_factory.mktemp("secure_page")
    shutil.copytree(small_store / "datasets", root / "datasets")
    params = params_for(root)
    panel = load_panel(params.replace(end=pd.Timestamp.max.date()))
    # a vendor's company name that a spreadsheet would run as a formula
    member = int(np.flatnonzero(panel.members(len(panel.dates) - 1))[0])
    metadata = panel.metadata.copy()
    metadata.iloc[member, metadata.columns.get_loc("name")] = '=HYPERLINK("http://evil.example")'
    panel = dataclasses.replace(panel, metadata=metadata)
    app = web.create_app(params, panel, root / "results" / ".investor_page")
    return {"root": root, "panel": panel, "client": app.test_client(), "member": member}


def _post(site, holdings: str | None = None, headers: dict | None = None, **form):
    data = {"theme": "equal_weight", "amount": "10000", "stocks": "3", "shares": "fractional"}
    data.update(form)
    if holdings is not None:
        data["holdings"] = (io.BytesIO(holdings.encode()), "h.csv")
    return site["client"].post(
        "/plan", data=data, content_type="multipart/form-data", headers=headers or {}
    )


def _error(response) -> str:
    text = response.get_data(as_text=True)
    found = re.search(r'class="error"[^>]*>(.*?)</', text, re.S)
    return found.group(1) if found else text


def test_the_page_refuses_other_host_names_and_other_sites(site):
    client = site["client"]
    assert client.get("/").status_code == 200  # Host: localhost
    assert client.get("/", headers={"Host": "127.0.0.1:8050"}).status_code == 200
    assert client.get("/", headers={"Host": "[::1]:8050"}).status_code == 200
    rebound = client.get("/", headers={"Host": "evil.example"})  # DNS rebinding
    assert rebound.status_code == 403 and "evil.example" in rebound.get_data(as_text=True)
    assert "<table" not in rebound.get_data(as_text=True)
    assert client.get("/", headers={"Host": "192.168.1.5:8050"}).status_code == 403
    foreign = _post(site, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and "Action" not in foreign.get_data(as_text=True)
    assert _post(site, headers={"Origin": "null"}).status_code == 403
    assert _post(site, headers={"Origin": "http://localhost"}).status_code == 200


def test_served_to_the_network_the_page_still_refuses_foreign_names():
    allowed = web.host_checker("0.0.0.0")
    assert allowed("192.168.1.5") and allowed("localhost") and allowed("::1")
    assert not allowed("evil.example")
    on_this_computer = web.host_checker("127.0.0.1")
    assert not on_this_computer("192.168.1.5") and on_this_computer("127.0.0.1")


def test_serving_to_the_network_needs_allow_network(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "equity_backtest.investor", "serve", "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--allow-network" in proc.stderr and "no login" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_row_of_a_million_commas_is_refused_at_once_with_its_row(site):
    response = _post(site, holdings="stock,shares\n" + "," * 980_000 + "\n")
    assert response.status_code == 400
    message = _error(response)
    assert "row 2" in message and "980,001 fields" in message and "has 2" in message


@pytest.mark.parametrize(
    ("holdings", "expected"),
    [
        ("stock,Stock,shares\nA,B,1\n", "name the same thing"),
        ("stock,shares,Shares \nA,1,2\n", "name the same thing"),
        ("ticker,stock,shares\nA,B,1\n", "name the same thing"),
        ("stock,shares\nAAA,1e308\n", "more than any company has issued"),
        ('stock,shares\nAAA,"1000,50"\n', "write decimals with a point"),
        ("stock,shares\nAAA,inf\n", "is not a number"),
        ("stock,shares\nAAA,1,2\n", "3 fields where the header has 2"),
        ("a," * 60 + "\n", "61 columns"),
    ],
)
def test_malformed_holdings_are_refused_with_the_row_and_field(tmp_path, holdings, expected):
    path = tmp_path / "h.csv"
    path.write_text(holdings)
    with pytest.raises(BadInputError, match=re.escape(expected)):
        read_holdings(path)


@pytest.mark.parametrize(
    ("amount", "expected"),
    [("1000,50", "write decimals with a point"), ("1e300", "from 0 to"), ("nan", "from 0 to")],
)
def test_absurd_or_ambiguous_amounts_are_refused(site, amount, expected):
    response = _post(site, amount=amount)
    assert response.status_code == 400 and expected in _error(response)
    assert web.parse_amount("25,000") == 25_000 and web.parse_amount("1,234.50") == 1234.5


def test_a_message_about_many_unknown_tickers_stays_short(site):
    holdings = "stock,shares\n" + "".join(f"ZZ{i:06d},1\n" for i in range(80_000))
    response = _post(site, holdings=holdings)
    message = _error(response)
    assert response.status_code == 400 and "79,989 more" in message and len(message) < 1_000


def test_downloaded_orders_never_hold_a_spreadsheet_formula(site):
    panel, member = site["panel"], site["member"]
    ticker = panel.tickers[member]
    holdings = f"stock,shares\n{ticker},10\n"
    response = _post(
        site, holdings=holdings, stocks=str(int(panel.members(len(panel.dates) - 1).sum()))
    )
    assert response.status_code == 200
    href = re.search(r'href="data:text/csv;base64,([^"]+)"', response.get_data(as_text=True))
    orders = pd.read_csv(io.StringIO(base64.b64decode(href.group(1)).decode()))
    name = orders.loc[orders["stock"] == ticker, "name"].iloc[0]
    assert name.startswith("'=HYPERLINK")
    for column in orders.select_dtypes(include="object"):
        assert not orders[column].astype(str).str.match(r"^[=+\-@\t\r]").any()
    # numbers stay numbers: a sale is still -10 in the trade column
    assert (orders["trade"] < 0).any() or (orders["trade"] > 0).any()


def test_spreadsheet_safe_touches_only_text_that_starts_a_formula():
    frame = pd.DataFrame(
        {"name": ["=1+1", "+x", "-y", "@z", "\tt", "\rr", "ok", None], "n": range(-4, 4)}
    )
    safe = spreadsheet_safe(frame)
    assert safe["name"].tolist()[:7] == ["'=1+1", "'+x", "'-y", "'@z", "'\tt", "'\rr", "ok"]
    assert pd.isna(safe["name"].iloc[7]) and safe["n"].tolist() == list(range(-4, 4))
    assert frame["name"].iloc[0] == "=1+1"  # a copy: the plan itself is unchanged


def test_what_a_visitor_sends_is_shown_as_text_and_never_becomes_a_path(site, tmp_path):
    escape = tmp_path / "planted.csv"
    response = site["client"].post(
        "/plan",
        data={
            "theme": "equal_weight", "amount": "10000", "stocks": "3", "shares": "fractional",
            "holdings": (io.BytesIO(b"stock,shares\n<script>alert(1)</script>,1\n"), str(escape)),
        },
        content_type="multipart/form-data",
    )  # fmt: skip
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page and not escape.exists()
    assert site["client"].application.debug is False


def test_the_command_lines_orders_never_hold_a_spreadsheet_formula(project):
    """The same neutralisation on the command line's CSV, from a vendor's company name that
    starts with '=' (a newer metadata log for one member, built into the dataset)."""
    from equity_backtest.data.datalog import LogName, list_logs, read_log, write_log
    from tests.conftest import run_script

    logs = list_logs(project / "datalog")
    name, path = next((n, p) for n, p in logs if n.data_type == "metadata_array")
    meta = read_log(path)
    member = read_log(next(p for n, p in logs if n.data_type == "constituent_list"))["ticker"].iloc[
        0
    ]
    row = meta[meta["ticker"] == member].assign(name='=HYPERLINK("http://evil.example")')
    later = max(n.timestamp for n, _ in logs) + 1
    write_log(project / "datalog", LogName(later, name.source, name.data_type, name.label), row)
    run_script(project, "02_build_datasets.py", "--quiet")
    (project / "h.csv").write_text(f"stock,shares\n{member},10\n")
    out = project / "orders.csv"
    run_script(project, "-m", "equity_backtest.investor", "--theme", "equal_weight", "--stocks",
               "20", "--invest", "1000", "--holdings", "h.csv", "--out", str(out), "--quiet")  # fmt: skip
    orders = pd.read_csv(out)
    assert orders.loc[orders["stock"] == member, "name"].iloc[0].startswith("'=HYPERLINK")
