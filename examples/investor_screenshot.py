"""The screenshot of the investor's page in docs/investor.md, regenerated.

    python examples/investor_screenshot.py [--set datasets_dir=...] [--out docs/investor_page.png]

Serves the page on the latest dataset version (run 01 and 02 first), fills the form (Magic
Formula, 10,000 to invest, 10 stocks, whole shares) in headless Chromium and saves a PNG.
Needs `pip install -e ".[web]" playwright` and a Chromium (Debian: apt install chromium).
"""

from __future__ import annotations

import argparse
import shutil
import threading
from pathlib import Path

import pandas as pd
from werkzeug.serving import make_server

from equity_backtest.config import load_parameters, parse_assignments
from equity_backtest.data.panel import load_panel
from equity_backtest.investor import page as web

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parameters", default=str(REPO / "parameters.py"))
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--out", default=str(REPO / "docs" / "investor_page.png"))
    args = parser.parse_args()
    params = load_parameters(args.parameters, parse_assignments(args.set))
    panel = load_panel(params.replace(end=pd.Timestamp.max.date()))
    app = web.create_app(params, panel, Path(params.results_dir) / ".investor_page")
    server = make_server("127.0.0.1", 0, app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium") or shutil.which("chromium-browser"),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1150, "height": 900})
        page.goto(f"http://127.0.0.1:{server.server_port}/")
        page.select_option("#theme", "magic_formula")
        page.fill("#amount", "10000")
        page.fill("#stocks", "10")
        page.check("#whole")
        page.click("#submit")
        page.screenshot(path=args.out, full_page=False)
        browser.close()
    server.shutdown()
    print(args.out)


if __name__ == "__main__":
    main()
