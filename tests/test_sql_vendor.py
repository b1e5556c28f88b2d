"""The SQL vendor against real databases: a throwaway PostgreSQL server (initdb on loopback),
DuckDB and SQLite, each filled with the simulated market in warehouse shapes (a long price table,
a one-wide-table of quarterly figures holding older snapshots, index lists, corporate actions,
names). 01 through the vendor gives the same dataset as the simulated source, a rerun resumes,
an unreachable server is exit 3, and bad credentials one clear message."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pandas as pd
import pytest

from equity_backtest.config import Parameters
from equity_backtest.data import datasets
from equity_backtest.data.vendors import simulated, sql
from equity_backtest.data.vendors.simulated import tables as sim_tables
from equity_backtest.errors import BadInputError, VendorUnavailableError
from tests import postgres as pg
from tests.conftest import REPO, free_port, params_for, run_script, small_settings

pytestmark = pytest.mark.slow
sqlalchemy = pytest.importorskip("sqlalchemy")


def _warehouse_tables() -> dict[str, pd.DataFrame]:
    """The small simulated market as a warehouse would hold it."""
    market = simulated.simulate(small_settings())
    prices = sim_tables._quoted(market.prices).rename(columns={"ticker": "symbol"})
    fund = sim_tables._quoted(market.fundamentals).rename(columns={"ticker": "symbol"})
    fund["snapshot"] = pd.Timestamp("2024-01-01")
    stale = fund.assign(snapshot=pd.Timestamp("2023-01-01"))  # an older snapshot, other values
    stale[list(simulated.FUNDAMENTAL_METRICS)] *= 1.5
    members = market.constituents.rename(columns={"index": "index_name"})
    actions = sim_tables._quoted(market.corporate_actions).rename(columns={"ticker": "symbol"})
    return {
        "prices": prices,
        "model_data": pd.concat([stale, fund], ignore_index=True),
        "members": members[["date", "index_name", "ticker", "weight"]],
        "actions": actions,
        "names": market.metadata,
    }


def _fill(url: str) -> None:
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        for name, frame in _warehouse_tables().items():
            frame.to_sql(name, connection, index=False, if_exists="replace")
    engine.dispose()


LATEST = {
    "postgresql": "SELECT DISTINCT ON (symbol, period_end) * FROM model_data "
    "ORDER BY symbol, period_end, snapshot DESC",
    "duckdb": "SELECT * FROM model_data QUALIFY row_number() OVER "
    "(PARTITION BY symbol, period_end ORDER BY snapshot DESC) = 1",
    "sqlite": "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY symbol, period_end "
    "ORDER BY snapshot DESC) AS rn FROM model_data) WHERE rn = 1",
}


def _mappings(folder: Path, dialect: str) -> list[str]:
    metrics = "\n".join(f'{m} = "{m}"' for m in simulated.FUNDAMENTAL_METRICS)
    bodies = {
        "prices": (
            "SELECT * FROM prices",
            'data_type = "ticker_market_data"\nticker = "symbol"\ndate = "date"\n'
            "[output.columns]\n"
            + "\n".join(
                f'{f} = "{f}"' for f in ("open", "high", "low", "close", "volume", "market_cap")
            ),
        ),
        "fundamentals": (
            LATEST[dialect],
            'data_type = "ticker_fundamental_data"\nticker = "symbol"\ndate = "period_end"\n'
            f'announcement_date = "announcement_date"\n[output.columns]\n{metrics}',
        ),
        "members": (
            "SELECT * FROM members",
            'data_type = "constituent_list"\nticker = "ticker"\ndate = "date"\nindex = "index_name"\n'
            '[output.columns]\nweight = "weight"',
        ),
        "actions": (
            "SELECT * FROM actions",
            'data_type = "corporate_actions"\nticker = "symbol"\ndate = "date"\n'
            '[output.columns]\naction = "action"\nvalue = "value"',
        ),
        "names": (
            "SELECT * FROM names",
            'data_type = "metadata_array"\nticker = "ticker"\n[output.columns]\n'
            'name = "name"\nsector = "sector"',
        ),
    }
    paths = []
    for name, (query, output) in bodies.items():
        path = folder / f"{name}.toml"
        path.write_text(f'source = "warehouse"\nquery = """{query}"""\n\n[[output]]\n{output}\n')
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL cluster holding the warehouse tables."""
    with pg.cluster() as server:
        _fill(server.url)
        yield server


def _reference(small_store) -> dict[str, pd.DataFrame]:
    _, tables = datasets.load_tables(small_store / "datasets")
    return tables


def _same_data(a: dict, b: dict) -> None:
    for table in ("market", "fundamentals", "constituents", "corporate_actions"):
        x = (
            a[table]
            .drop(columns=["source", "log_ts"])
            .astype({"ticker": str} if "ticker" in a[table] else {})
        )
        y = (
            b[table]
            .drop(columns=["source", "log_ts"])
            .astype({"ticker": str} if "ticker" in b[table] else {})
        )
        x = x.astype({c: str for c in x.columns if x[c].dtype.name == "category"})
        y = y.astype({c: str for c in y.columns if y[c].dtype.name == "category"})
        keys = [c for c in x.columns if x[c].dtype == object or "datetime" in str(x[c].dtype)]
        x = x.sort_values(keys).reset_index(drop=True).sort_index(axis=1)
        y = y.sort_values(keys).reset_index(drop=True).sort_index(axis=1)
        pd.testing.assert_frame_equal(x, y, check_exact=True, check_dtype=False), table


def _run(tmp_path: Path, url: str, dialect: str, **kw) -> Parameters:
    params = params_for(tmp_path, source="warehouse", sql_url=url, **kw)
    params = params.replace(sql_mappings=_mappings(tmp_path, dialect))
    from equity_backtest import api

    api.query(params)
    api.build(params)
    return params


@pytest.mark.parametrize("dialect", ["postgresql", "duckdb", "sqlite"])
def test_the_warehouse_gives_the_simulated_market_exactly(tmp_path, small_store, request, dialect):
    if dialect == "postgresql":
        url = request.getfixturevalue("postgres").url
    else:
        pytest.importorskip("duckdb_engine") if dialect == "duckdb" else None
        url = f"{dialect}:///{tmp_path / 'warehouse.db'}"
        _fill(url)
    params = _run(tmp_path, url, dialect)
    _, got = datasets.load_tables(params.datasets_dir)
    _same_data(got, _reference(small_store))  # the newest snapshot of each quarter, bit for bit


def test_a_rerun_resumes_and_force_asks_again(tmp_path, postgres):
    params = _run(tmp_path, postgres.url, "postgresql")
    logs = sorted(p.name for p in (tmp_path / "datalog").glob("*.csv"))
    counts = sql.query(params)
    assert counts == {"written": 0, "already_logged": 5}  # every mapping done within the window
    assert sorted(p.name for p in (tmp_path / "datalog").glob("*.csv")) == logs
    again = sql.query(params, force=True)
    assert again["written"] == len(logs)  # asked again into a later block, no clash


def test_killed_mid_query_then_rerun_gives_the_same_dataset(tmp_path, small_store, postgres):
    for name in ("01_query_vendor.py", "02_build_datasets.py"):
        shutil.copy(REPO / name, tmp_path / name)
    mappings = _mappings(tmp_path, "postgresql")
    (tmp_path / "parameters.py").write_text(
        f'source = "warehouse"\nindex = "TOP20"\nsql_url = "{postgres.url}"\n'
        f"sql_mappings = {mappings!r}\n"
    )
    killed = run_script(tmp_path, "01_query_vendor.py", check=False,
                        env={"EQUITY_BACKTEST_KILL_AT": "write:150"})  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    run_script(tmp_path, "01_query_vendor.py")
    run_script(tmp_path, "02_build_datasets.py")
    _, got = datasets.load_tables(tmp_path / "datasets")
    _same_data(got, _reference(small_store))


def test_an_unreachable_server_is_exit_3_and_bad_credentials_one_message(tmp_path, postgres):
    for name in ("01_query_vendor.py",):
        shutil.copy(REPO / name, tmp_path / name)
    dead = f"postgresql://research@127.0.0.1:{free_port()}/postgres"
    (tmp_path / "parameters.py").write_text(
        f'source = "warehouse"\nsql_url = "{dead}"\nbbg_retries = 1\nbbg_retry_wait_s = 0.1\n'
        f"sql_mappings = {_mappings(tmp_path, 'postgresql')!r}\n"
    )
    proc = run_script(tmp_path, "01_query_vendor.py", check=False)
    assert (
        proc.returncode == 3
        and "cannot be reached" in proc.stderr
        and "Traceback" not in proc.stderr
    )
    assert (
        not list((tmp_path / "datalog").glob("*.csv")) if (tmp_path / "datalog").exists() else True
    )
    url = postgres.url.replace("research@", "nobody:${WAREHOUSE_PASSWORD}@")
    os.environ["WAREHOUSE_PASSWORD"] = "s3cret-value"
    try:
        with pytest.raises(VendorUnavailableError) as err:
            sql.connect(url, 0, 0.0)
    finally:
        del os.environ["WAREHOUSE_PASSWORD"]
    assert "nobody" in str(err.value) and "s3cret-value" not in str(err.value)
    with pytest.raises(BadInputError, match=r"\$\{UNSET_VARIABLE_X\}"):
        sql.connect(url.replace("WAREHOUSE_PASSWORD", "UNSET_VARIABLE_X"), 0, 0.0)


def test_a_bad_query_names_the_mapping(tmp_path, postgres):
    path = tmp_path / "bad.toml"
    path.write_text(
        'source = "warehouse"\nquery = "SELECT * FROM no_such_table"\n\n[[output]]\n'
        'data_type = "ticker_market_data"\nticker = "symbol"\ndate = "date"\n'
    )
    params = params_for(
        tmp_path, source="warehouse", sql_url=postgres.url, sql_mappings=[str(path)]
    )
    with pytest.raises(BadInputError, match=r"bad.toml: the query failed: .*no_such_table"):
        sql.query(params)


def test_a_url_whose_driver_is_missing_names_the_package_to_install():
    """A dialect whose driver is not installed (here MySQL's) is exit 3 with what to install."""
    with pytest.raises(VendorUnavailableError, match=r"needs the Python package 'MySQLdb'"):
        sql.connect("mysql://analyst:pw@127.0.0.1/research", retries=0, wait_s=0)
