"""Work done ahead on threads, its results taken in order: for a reader whose next pieces can
be read, decompressed or parsed (by Arrow or the OS, without the GIL) while the caller works on
this one."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def in_order(tasks: Iterable[Callable[[], T]], ahead: int) -> Iterator[T]:
    """Each task's result, in the order of `tasks`; up to `ahead` tasks run on threads beyond
    the one whose result the caller holds. `tasks` is drawn from in the caller's thread, so what
    it does to make a task (reading a file) is done there. A task's exception is raised here, in
    its turn."""
    with ThreadPoolExecutor(ahead) as pool:
        coming: deque = deque()
        for task in tasks:
            coming.append(pool.submit(task))
            while len(coming) > ahead:
                yield coming.popleft().result()
        while coming:
            yield coming.popleft().result()
