"""The investor's page: the same orders as the command-line tool, bad input as messages on the
page (never an error page), and the whole flow in a real browser (Debian's chromium, headless,
driven by Playwright)."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from equity_backtest.data.panel import load_panel
from equity_backtest.investor import page as web
from equity_backtest.investor import planner
from tests.conftest import REPO, params_for, run_script

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def site(tmp_path_factory, small_store):
    root = tmp_path_factory.mktemp("page")
    shutil.copytree(small_store / "datasets", root / "datasets")
    params = params_for(root)
    panel = load_panel(params.replace(end=pd.Timestamp.max.date()))
    app = web.create_app(params, panel, root / "results" / ".investor_page")
    return {"root": root, "params": params, "panel": panel, "client": app.test_client()}


def _cli_orders(root: Path, *args: str) -> str:
    from tests.conftest import write_parameters_file

    write_parameters_file(root / "parameters.py")
    out = root / "cli_orders.csv"
    run_script(root, "-m", "equity_backtest.investor", *args, "--out", str(out))
    return out.read_text()


def _holdings(site) -> str:
    members = site["panel"].tickers[site["panel"].members(len(site["panel"].dates) - 1)]
    return f"stock,shares,amount invested\n{members[0]},12.5,1000\n{members[3]},7,800\n"


def test_the_page_lists_each_theme_with_its_backtest_and_the_data_age(site):
    page = site["client"].get("/").get_data(as_text=True)
    assert "prices up to" in page and "days old" in page
    for name, *_ in web.themes():
        assert f'id="card-{name}"' in page
    assert page.count("<svg") >= 5 and "Annual return" in page and "Worst drawdown" in page
    assert "<script" not in page and "http://" not in page.split("</head>")[0]
    # cached per dataset version and theme: a second app reads the cache, computes nothing
    cached = list((site["root"] / "results" / ".investor_page").rglob("*.json"))
    assert len(cached) == len(web.themes())


def test_the_page_gives_exactly_the_orders_the_command_line_gives(site):
    holdings = _holdings(site)
    (site["root"] / "h.csv").write_text(holdings)
    cli = _cli_orders(
        site["root"], "--theme", "quality", "--stocks", "5", "--invest", "25000",
        "--holdings", "h.csv", "--whole-shares",
    )  # fmt: skip
    response = site["client"].post(
        "/plan",
        data={
            "theme": "quality",
            "amount": "25,000",
            "stocks": "5",
            "shares": "whole",
            "holdings": (io.BytesIO(holdings.encode()), "my holdings.csv"),
        },
        content_type="multipart/form-data",
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    import base64

    href = re.search(r'href="data:text/csv;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(href).decode() == cli


@pytest.mark.parametrize(
    "fields, upload, message",
    [
        ({}, "stock,amount\nAAA,5\n", r"no column \[.shares.\]"),
        ({}, "stock,shares\nFIRST,-3\n", r"row 2, field .shares.: -3 is negative"),
        ({}, "stock,shares\nNOPE_X,3\n", r"row 2, field .stock.: .NOPE_X. has no price"),
        ({"amount": "abc"}, None, r"Amount to invest: .abc. is not a number"),
        ({"amount": "nan"}, None, r"Amount to invest: .nan. must be a number"),
        ({"stocks": "0"}, None, r"Number of stocks: 0 must be between 1 and"),
        ({"theme": "../../etc/passwd"}, None, r"is not one of the themes"),
    ],
)
def test_bad_input_is_a_message_on_the_page(site, fields, upload, message):
    members = site["panel"].tickers[site["panel"].members(len(site["panel"].dates) - 1)]
    data = {"theme": "quality", "amount": "1000", "stocks": "5", "shares": "fractional", **fields}
    if upload is not None:
        data["holdings"] = (io.BytesIO(upload.replace("FIRST", members[0]).encode()), "h.csv")
    response = site["client"].post("/plan", data=data, content_type="multipart/form-data")
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and 'id="error"' in page and "Traceback" not in page
    assert re.search(message, page.replace("&#39;", "'").replace("&#34;", '"')), page[:3000]
    assert "<form" in page  # the page itself, ready for another try


def test_a_huge_upload_is_refused_with_a_message(site):
    blob = b"stock,shares\n" + b"AAA,1\n" * 9_000_000  # about 54 MB
    response = site["client"].post(
        "/plan",
        data={
            "theme": "quality",
            "amount": "1",
            "stocks": "5",
            "holdings": (io.BytesIO(blob), "big.csv"),
        },
        content_type="multipart/form-data",
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 413 and "larger than 1 MB" in page and "<form" in page


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed here (CI installs it)")
def test_the_page_in_a_real_browser(site, tmp_path):
    from playwright.sync_api import sync_playwright

    from tests.conftest import free_port, write_parameters_file

    root = site["root"]
    write_parameters_file(root / "parameters.py")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "equity_backtest.investor", "serve", "--port", str(port)],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        for line in server.stdout:
            if (
                "Serving the investor's page on http://127.0.0.1:" in line
                or time.monotonic() > deadline
            ):
                break
        holdings = tmp_path / "holdings.csv"
        holdings.write_text(_holdings(site))
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--no-first-run"],
            )  # fmt: skip
            page = browser.new_page(accept_downloads=True)
            page.goto(f"http://127.0.0.1:{port}/")
            assert "Rebalance my portfolio" in page.title()
            page.select_option("#theme", "quality")
            page.fill("#amount", "25000")
            page.fill("#stocks", "5")
            page.check("#whole")
            page.set_input_files("#holdings", str(holdings))
            page.click("#submit")
            rows = page.locator("#orders tbody tr")
            assert rows.count() >= 5
            assert page.locator("#cash-left").inner_text()
            with page.expect_download() as download:
                page.click("#download")
            got = Path(download.value.path()).read_text()
            (root / "h.csv").write_text(holdings.read_text())
            cli = _cli_orders(
                root, "--theme", "quality", "--stocks", "5", "--invest", "25000",
                "--holdings", "h.csv", "--whole-shares",
            )  # fmt: skip
            assert got == cli
            page.fill("#amount", "abc")
            page.click("#submit")
            assert "is not a number" in page.locator("#error").inner_text()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_page_speaks_plain_words(site):
    """Theme titles and sentences as a reader would write them (no file names, setting names or
    command-line flags), a sentence never cut at an abbreviation, and messages without flags."""
    page = site["client"].get("/").get_data(as_text=True)
    for code in ("TOP_N", "DAYS", "allow_short", "--invest", "magic_formula<"):
        assert code not in page, code
    titles = {name: title for name, title, _ in web.themes()}
    assert titles["magic_formula"] == "Greenblatt's Magic Formula"
    assert all("_" not in t for t in titles.values())
    sentences = {name: sentence for name, _, sentence in web.themes()}
    assert "the highest book-to-market" in sentences["price_to_book"]
    assert "252 trading days" in sentences["low_volatility"]
    response = site["client"].post(
        "/plan",
        data={"theme": "quality", "amount": "0", "stocks": "5", "shares": "fractional"},
        content_type="multipart/form-data",
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 400 and "the amount to invest is 0" in text
    assert "--" not in re.search(r'id="error"[^>]*>(.*?)</p>', text, re.S).group(1)


def test_old_prices_are_said_on_the_page_and_the_command_line(site):
    """The small market ends years ago: the page says how old the newest prices are and warns;
    on the day after the data it does not."""
    page = site["client"].get("/").get_data(as_text=True)
    assert 'id="stale"' in page and "Bring the data up to date" in page
    last = site["panel"].dates[-1]
    fresh = web.create_app(
        site["params"], site["panel"], site["root"] / "results" / ".investor_page",
        today=last + pd.Timedelta(days=1),
    ).test_client()  # fmt: skip
    assert 'id="stale"' not in fresh.get("/").get_data(as_text=True)
    assert planner.staleness(last, last + pd.Timedelta(days=30)).startswith("The newest prices")
