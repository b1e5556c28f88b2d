"""Bad settings are refused with the setting's name (exit 2), files follow the umask, and a
window reaching past the data is said, not silently cut."""

from __future__ import annotations

import os
import stat

import pytest

from equity_backtest.config import load_parameters
from equity_backtest.errors import BadInputError
from equity_backtest.infra.storage import atomic_write_text
from tests.conftest import REPO, run_script


@pytest.mark.parametrize(
    "overrides, named",
    [
        ({"spread_bps": "nan"}, "spread_bps"),
        ({"commission_rate": float("inf")}, "commission_rate"),
        ({"max_leverage": "nan"}, "max_leverage"),
        ({"starting_cash": "inf"}, "starting_cash"),
        ({"sim_n_tickers": 40.7}, "sim_n_tickers"),
        ({"sim_n_tickers": "40.7"}, "sim_n_tickers"),
        ({"bar_frequency": "hourly"}, "bar_frequency"),
        ({"benchmark": " "}, "benchmark"),
        ({"file_imports": "x.csv"}, "file_imports"),
        ({"file_imports": [["only-one.toml"]]}, "file_imports"),
        ({"wrds_format": "sas"}, "wrds_format"),
        ({"wrds_frequency": "weekly"}, "wrds_frequency"),
        ({"wrds_port": 0}, "wrds_port"),
        ({"wrds_fundamental_scale": "nan"}, "wrds_fundamental_scale"),
        ({"wrds_fundamental_fields": {"Revenue; DROP": "saleq"}}, "wrds_fundamental_fields"),
        ({"wrds_year_to_date": ["dividends"]}, "wrds_year_to_date"),
        ({"wrds_chunk_permnos": 0}, "wrds_chunk_permnos"),
    ],
)
def test_non_finite_and_out_of_range_settings_are_refused_by_name(overrides, named):
    with pytest.raises(BadInputError, match=f"parameter '{named}'"):
        load_parameters(REPO / "parameters.py", overrides)


def test_dates_in_messages_are_written_as_dates():
    with pytest.raises(BadInputError, match=r"'start' = 2030-01-01: is after end"):
        load_parameters(REPO / "parameters.py", {"start": "2030-01-01"})


def test_files_are_written_with_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        os.umask(0o077)
        atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600


@pytest.mark.slow
@pytest.mark.parametrize("script", ["01_query_vendor.py", "02_build_datasets.py"])
def test_an_unknown_exchange_calendar_is_refused_by_name(project, script):
    before = sorted(p.name for p in (project / "datalog").iterdir())
    extra = ["--full"] if script.startswith("02") else []  # (02 would find nothing new)
    proc = run_script(project, script, "--set", "exchange_calendar=XNYZ", *extra, check=False)
    assert proc.returncode == 2 and "'exchange_calendar' = 'XNYZ'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in (project / "datalog").iterdir()) == before


@pytest.mark.slow
def test_an_end_after_the_data_is_said_and_kept_in_the_run(project):
    proc = run_script(project, "03_trade.py", "--end", "2030-12-31", "--set", "rebalance=yearly")
    assert "end = 2030-12-31 is after the data's last day 2013-12-31" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("amount", ["nan", "inf", "-5"])
def test_the_investor_refuses_an_amount_that_is_not_cash(project, amount):
    proc = run_script(
        project,
        "-m",
        "equity_backtest.investor",
        "--theme",
        "equal_weight",
        "--invest",
        amount,
        check=False,
    )
    assert proc.returncode == 2 and "--invest" in proc.stderr and "Traceback" not in proc.stderr


def test_holdings_rows_count_blank_lines_and_unknown_stocks_name_file_and_row(project):
    (project / "h.csv").write_text("stock,shares\nNOPE_A,10\n\nNOPE_B,1\n")
    proc = run_script(
        project,
        "-m",
        "equity_backtest.investor",
        "--theme",
        "equal_weight",
        "--holdings",
        "h.csv",
        check=False,
    )
    assert proc.returncode == 2 and "holdings file h.csv, row 2, field 'stock'" in proc.stderr
    (project / "h.csv").write_text("stock,shares\nA,10\n\nB,x\n")
    proc = run_script(
        project, "-m", "equity_backtest.investor", "--theme", "equal_weight",
        "--holdings", "h.csv", check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "row 4, field 'shares'" in proc.stderr


@pytest.mark.slow
def test_two_identical_runs_evaluate_to_identical_files(project):
    import json

    runs = []
    for _ in range(2):
        run = (
            project
            / run_script(project, "03_trade.py", "--set", "rebalance=quarterly").stdout.strip()
        )
        run_script(project, "04_evaluate.py", str(run))
        runs.append(run)
    assert runs[0].name != runs[1].name

    def files(run):
        out = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != "run.log"}
        info = json.loads(out.pop("run.json"))
        info.pop("created_utc")
        return out, info

    (a, info_a), (b, info_b) = files(runs[0]), files(runs[1])
    assert info_a == info_b
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []  # metrics.json and tearsheet.html included
