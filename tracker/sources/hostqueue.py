"""Work waiting for its host's politeness budget, one queue per host, hosts taken in turn.

The cycle starts a request only when its host has a free slot and rate budget, so a host
throttled by ``per_host_per_minute`` keeps its backlog here instead of holding the fetch
threads, and every other host's feeds and articles go ahead of it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class HostQueue(Generic[T]):
    """FIFO per host; ``pop_ready`` takes hosts round-robin, skipping those not ready."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[T]] = {}
        self._order: deque[str] = deque()  #: hosts with waiting work, in turn order
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[T]:
        for queue in self._queues.values():
            yield from queue

    def push(self, host: str, item: T) -> None:
        queue = self._queues.get(host)
        if queue is None:
            queue = self._queues[host] = deque()
            self._order.append(host)
        queue.append(item)
        self._size += 1

    def pop_ready(self, ready: Callable[[str, T], bool]) -> tuple[str, T] | None:
        """The oldest item of the next host (in turn) for which ``ready(host, item)``, or None."""
        for _ in range(len(self._order)):
            host = self._order[0]
            self._order.rotate(-1)  # whether or not it is ready, the next host is asked next
            queue = self._queues[host]
            if not ready(host, queue[0]):
                continue
            item = queue.popleft()
            self._size -= 1
            if not queue:
                del self._queues[host]
                self._order.remove(host)
            return host, item
        return None

    def clear(self) -> list[T]:
        """Drop and return everything waiting."""
        items = list(self)
        self._queues.clear()
        self._order.clear()
        self._size = 0
        return items
