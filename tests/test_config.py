"""O1: parameters.py loading, overrides and validation."""

import datetime as dt

import pytest

from equity_backtest.config import load_parameters, parse_assignments
from equity_backtest.errors import BadInputError
from tests.conftest import REPO


def test_repository_parameters_load_and_flags_override():
    p = load_parameters(REPO / "parameters.py", {"start": "2010-03-01", "rebalance": "quarterly"})
    assert p.start == dt.date(2010, 3, 1) and p.rebalance == "quarterly" and p.index == "TOP100"
    assert (
        load_parameters(
            REPO / "parameters.py", parse_assignments(["rebalance=21", "fractional_shares=yes"])
        ).rebalance
        == 21
    )


@pytest.mark.parametrize(
    "text,match",
    [
        ("strat = '2010-01-01'\n", "unknown parameter 'strat' \\(did you mean 'start'\\?\\)"),
        ("start = 'yesterday'\n", "'start'.*not a date"),
        ("start = '2020-01-01'\nend = '2019-01-01'\n", "after end"),
        ("rebalance = 'fortnightly'\n", "rebalance"),
        ("volume_cap = 0\n", "volume_cap"),
        ("cash_buffer = 'lots'\n", "cash_buffer.*not a number"),
        ("x = 1/0\n", "could not run it"),
    ],
)
def test_bad_parameters_are_named(tmp_path, text, match):
    path = tmp_path / "parameters.py"
    path.write_text(text)
    with pytest.raises(BadInputError, match=match):
        load_parameters(path)


def test_helpers_and_computed_values_are_allowed(tmp_path):
    path = tmp_path / "parameters.py"
    path.write_text(
        "import datetime\n_years = 3\nstart = datetime.date(2020, 1, 1)\nend = datetime.date(2020 + _years, 1, 1)\n"
    )
    assert load_parameters(path).end == dt.date(2023, 1, 1)


def test_bad_override_syntax():
    with pytest.raises(BadInputError, match="name=value"):
        parse_assignments(["rebalance"])
