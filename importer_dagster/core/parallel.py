"""Bounded, ordered parallel map: the shape the page fetcher and list discovery need."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


def ordered_parallel_map(
    function: Callable[[In], Out], items: Iterable[In], workers: int, name: str, ahead: int = 2
) -> Iterator[Out]:
    """Like `ThreadPoolExecutor.map`, but it reads `items` lazily.

    The standard `map` submits the whole iterable up front; over a million-contact window that
    would hold every page or batch in memory at once. Here at most `ahead` beyond one per worker
    are in flight: every worker stays busy, and the results waiting for a consumer that pauses
    are bounded by what the caller can afford to hold.
    """
    workers = max(1, workers)
    source = iter(items)
    with ThreadPoolExecutor(workers, thread_name_prefix=name) as pool:
        in_flight: deque[Future[Out]] = deque()
        try:
            while True:
                while len(in_flight) < workers + ahead:
                    item = next(source, _END)
                    if item is _END:
                        break
                    in_flight.append(pool.submit(function, item))
                if not in_flight:
                    return
                yield in_flight.popleft().result()
        finally:
            for future in in_flight:
                future.cancel()


_END = object()
