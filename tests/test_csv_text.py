"""storage.csv_text writes exactly what pandas' to_csv writes (the archive's bytes depend on it)."""

import numpy as np
import pandas as pd
import pytest

from equity_backtest.infra.storage import csv_text


def _frames():
    rng = np.random.default_rng(7)
    n = 2000
    raw = np.frombuffer(rng.bytes(8 * n), dtype=np.float64)  # every kind of double
    floats = np.where(np.isfinite(raw), raw, 0.0)
    floats[:20] = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e16, 1e15, 1e-5, 1e-4, 0.1, 0.3,
                   5e-324, 1.7976931348623157e308, 2.5, -1.0, 123456789.0, 1 / 3, 7.0, np.nan,
                   9999999999999998.0]  # fmt: skip
    days = pd.to_datetime("2005-01-03") + pd.to_timedelta(rng.integers(0, 7000, n), unit="D")
    days = days.where(rng.random(n) > 0.05)  # some NaT
    yield pd.DataFrame(
        {
            "date": days,
            "weight": rng.standard_normal(n) * 10.0 ** rng.integers(-8, 17, n),
            "raw": floats,
            "round": np.round(rng.random(n), 2),  # many repeated values
            "shares": rng.integers(-5, 5, n),
            "flag": rng.random(n) > 0.5,
            "ticker": rng.choice(["AAA", "B,C", 'say "hi"', "line\nbreak", "", "Zürich"], n),
            "kind": pd.Categorical(rng.choice(["dividend", "interest"], n)),
            "stamp": pd.Timestamp("2024-03-01 15:30", tz="UTC")
            + pd.to_timedelta(np.arange(n), "h"),
            "f32": rng.random(n).astype(np.float32),
        }
    )
    plain = pd.DataFrame(  # nothing to quote: the fast path
        {
            "date": days,
            "ticker": rng.choice(["AAA", "BB B", "Zürich", None], n),
            "weight": np.where(rng.random(n) > 0.1, floats, np.nan),
            "shares": rng.integers(-5, 5, n),
            "flag": rng.random(n) > 0.5,
            "text": pd.array(rng.choice(["x", "y", None], n), dtype="string"),
        }
    )
    yield plain
    yield plain[["ticker", "weight"]].dropna()
    yield plain[["weight"]]
    yield pd.DataFrame({"x": [1.5, np.nan]}, index=pd.Index(["a", "b"], name="ticker"))
    yield pd.DataFrame(columns=["date", "ticker", "weight"])  # empty, as a run with no weights
    yield pd.DataFrame({"d": pd.to_datetime(["2020-01-01 10:00", None])})  # a time of day


@pytest.mark.parametrize("index", [False, True])
def test_csv_text_equals_pandas(index):
    for frame in _frames():
        before = frame.copy()
        expected = frame.to_csv(index=index, lineterminator="\n", date_format="%Y-%m-%d")
        assert csv_text(frame, index=index) == expected
        pd.testing.assert_frame_equal(frame, before)  # the caller's frame is untouched
