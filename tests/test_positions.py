"""The loop keeps the shares held at each close as the rows on which they change (Holdings), not
as a days x tickers array. The reference is that array written row by row, as the loop did
before: every way of reading the holdings back must give it bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from equity_backtest.engine.positions import Holdings


def written(days: int, n: int, seed: int):
    """Holdings and the dense array, written the same way: each row held, sometimes the row
    after a gap of rows that keep the last holding, sometimes a row written twice."""
    rng = np.random.default_rng(seed)
    dense, kept = np.zeros((days, n)), Holdings(n)
    shares = np.zeros(n)
    k = int(rng.integers(0, 3))  # (rows before the first holding stay zeros)
    while k < days:
        change = rng.random()
        if change < 0.3:
            shares = np.where(rng.random(n) < 0.5, rng.integers(-5, 50, n).astype(float), 0.0)
        elif change < 0.4:
            shares = shares.copy()
            shares[rng.integers(n)] = -0.0  # (a sign bit that only the dense array would keep)
        elif change < 0.5 and k > 0:  # the row before written again, then this one
            again = np.where(rng.random(n) < 0.5, 7.0, 0.0)
            kept.hold(k - 1, again)
            dense[k - 1 :] = again
        kept.hold(k, shares)
        dense[k:] = shares  # (a holding lasts until the next)
        k += int(rng.integers(1, 5))
    return kept, dense


@pytest.mark.parametrize("seed", range(8))
def test_holdings_read_back_as_the_dense_array_written_row_by_row(seed):
    kept, dense = written(60, 7, seed)
    assert all(a < b for a, b in zip(kept.rows, kept.rows[1:], strict=False))  # (one per row)
    for k in (0, 1, 17, 60):
        got = kept.dense(k)
        assert got.shape == (k, 7)
        assert np.array_equal(got.view(np.int64), dense[:k].view(np.int64))  # (bits: -0.0 too)
        rows, cols, held = kept.nonzero(k)
        ref_rows, ref_cols = np.nonzero(dense[:k])
        assert np.array_equal(rows, ref_rows) and np.array_equal(cols, ref_cols)
        assert np.array_equal(held, dense[:k][ref_rows, ref_cols])


def test_a_holding_is_stored_once_while_it_lasts_and_a_checkpoint_round_trips():
    kept, dense = written(200, 5, seed=3)
    assert len(kept.rows) < 200  # (rows that keep the last holding add nothing)
    again = Holdings.from_dense(dense)
    assert np.array_equal(again.dense(200).view(np.int64), dense.view(np.int64))
    assert again.rows == sorted(set(again.rows))


def test_shares_changed_after_hold_do_not_change_what_was_held():
    kept, shares = Holdings(3), np.array([1.0, 2.0, 3.0])
    kept.hold(0, shares)
    shares[0] = 99.0  # (the ledger's array is changed in place by the next trade)
    assert kept.dense(2).tolist() == [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]
