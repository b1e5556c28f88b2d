"""heap: kept() keeps freed blocks on the heap while a stage runs (glibc), nests, and hands
the defaults back when it ends."""

import resource

import numpy as np
import pytest

from equity_backtest.infra import heap


def _faults_allocating(repeats: int = 40) -> int:
    """Minor page faults of allocating, filling and freeing an 8 MB array `repeats` times."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        block = np.ones(1 << 20)
        del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(heap._LIBC is None, reason="glibc's allocator only")
def test_freed_blocks_stay_on_the_heap_inside_kept_and_not_after():
    with heap.kept():
        _faults_allocating(2)  # (the first block is faulted in once)
        inside = _faults_allocating()
        with heap.kept():  # nested: still kept
            nested = _faults_allocating()
        after_nested = _faults_allocating()
    outside = _faults_allocating()  # glibc's defaults again: each block is mapped anew
    assert inside < 40 and nested < 40 and after_nested < 40
    assert outside >= 40 * 4  # (at least one 2 MB huge page per 2 MB of each block)


def test_kept_ends_on_an_error_and_can_be_entered_again():
    with pytest.raises(RuntimeError, match="boom"), heap.kept():
        raise RuntimeError("boom")
    assert heap._depth == 0
    with heap.kept():
        assert heap._depth == 1
    assert heap._depth == 0
    heap.release_freed_memory()  # (also outside kept)
