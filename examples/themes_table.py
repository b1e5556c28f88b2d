"""The themes table of the README, regenerated: every bundled theme on the default simulated
market with the default settings of parameters.py (its start, end, costs and rebalancing; the
Magic Formula quarterly, as its docstring says), next to the index's own return.

    python examples/themes_table.py [--work FOLDER]

Prints a Markdown table. The market is built in FOLDER (default: a temporary folder), so the
project's own datalog/, datasets/ and results/ are left alone.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from equity_backtest import api

REPO = Path(__file__).resolve().parents[1]
THEMES = [
    ("price-to-book", "price_to_book.py", {}),
    ("12-1 momentum", "momentum_12_1.py", {}),
    ("quality", "quality.py", {}),
    ("low volatility", "low_volatility.py", {}),
    ("dividend yield", "dividend_yield.py", {}),
    ("residual momentum", "residual_momentum.py", {}),
    ("Magic Formula (quarterly)", "magic_formula.py", {"rebalance": "quarterly"}),
    ("equal weight", "equal_weight.py", {}),
    ("market-cap weight", "market_cap.py", {}),
]
RANDOM_SEEDS = (1, 2, 3, 4, 5)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", help="folder for the datalog, datasets and runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Path(args.work or tempfile.mkdtemp(prefix="themes_"))
    params = api.parameters(
        REPO / "parameters.py",
        datalog_dir=str(work / "datalog"),
        datasets_dir=str(work / "datasets"),
        results_dir=str(work / "results"),
    )
    api.query(params)
    api.build(params)
    rows, index = [], None
    for label, name, overrides in THEMES:
        run = api.backtest(params, algorithm=REPO / "strategies" / name, **overrides)
        m = run.metrics
        index = m["benchmark"]["annual_return"] if index is None else index
        rows.append((label, m["portfolio"]["annual_return"], m["portfolio"]["sharpe_ratio"]))
    randoms = [
        api.backtest(params, algorithm=REPO / "strategies" / "random_selection.py", seed=s).metrics[
            "portfolio"
        ]["annual_return"]
        for s in RANDOM_SEEDS
    ]
    first = api.load(run.folder).metrics["period"]
    print(
        f"Default simulated market ({params.index}, {params.sim_n_tickers} tickers), "
        f"{first['start']} to {first['end']}, {params.rebalance} rebalancing unless noted, "
        f"default costs; index (cap-weighted total return): {index:.1%} a year.\n"
    )
    print("| theme | a year | Sharpe |\n|---|---|---|")
    print(f"| the index itself | {index:.1%} | |")
    mean = sum(randoms) / len(randoms)
    print(
        f"| random selection (mean of {len(randoms)} seeds, best {max(randoms):.1%}) | {mean:.1%} | |"
    )
    for label, cagr, sharpe in rows:
        print(f"| {label} | {cagr:.1%} | {sharpe:.2f} |")


if __name__ == "__main__":
    main()
