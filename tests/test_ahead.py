"""infra.ahead: work done ahead on threads comes back in the order it was asked for."""

import time

import pytest

from equity_backtest.infra.ahead import in_order


@pytest.mark.parametrize("ahead", [1, 2, 3])
def test_results_come_in_the_order_of_the_tasks_however_long_each_takes(ahead):
    def task(k: int):
        def run():
            time.sleep(0.02 * ((7 * k) % 5))  # later tasks often finish first
            return k

        return run

    assert list(in_order((task(k) for k in range(12)), ahead)) == list(range(12))


def test_no_more_than_ahead_tasks_wait_beyond_the_one_held():
    """The caller holds one result while at most `ahead` more tasks are asked for: a reader's
    memory stays bounded."""
    drawn = []

    def tasks():
        for k in range(10):
            drawn.append(k)
            yield lambda k=k: k

    for k in in_order(tasks(), 2):
        assert len(drawn) <= k + 3


def test_a_task_s_error_is_raised_in_its_turn():
    seen = []

    def fail():
        raise ValueError("third")

    with pytest.raises(ValueError, match="third"):
        for value in in_order([lambda: 1, lambda: 2, fail, lambda: 4], 2):
            seen.append(value)
    assert seen == [1, 2]
