"""A fair queue for redis-py's blocking connection pool.

redis-py's :class:`~redis.BlockingConnectionPool` keeps its idle connections in
a ``queue.LifoQueue``. Under gevent that is not fair: a greenlet that gives a
connection back and asks again at once takes it straight back, because the
waiter that ``put`` woke has not run yet; with four connections and hundreds of
tight producer loops, waiters time out ("No connection available") while the
pool is busy serving the same few greedy callers.

:class:`FairQueue` hands a returned connection directly to the oldest waiter,
so waiters are served first come, first served and a wait is bounded by the
queue ahead of it, whatever the callers' loops look like. Idle connections
are still reused last in, first out (a warm socket before a cold one).
"""

from __future__ import annotations

import collections
import threading
from queue import Empty, Full
from typing import Any


class _Waiter:
    __slots__ = ("done", "event", "item")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.item: Any = None
        self.done = False


class FairQueue:
    """The part of ``queue.LifoQueue`` the pool uses (``put_nowait``, ``get``,
    ``queue``), with first-come-first-served hand-off to waiters."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        #: Idle items, the most recently returned last (read by redis-py).
        self.queue: list[Any] = []
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._lock = threading.Lock()

    def put_nowait(self, item: Any) -> None:
        """Give ``item`` to the oldest waiter, or keep it idle.

        :raises queue.Full: if no one waits and ``maxsize`` items are idle.
        """
        with self._lock:
            if self._waiters:
                waiter = self._waiters.popleft()
                waiter.item, waiter.done = item, True
                waiter.event.set()
                return
            if len(self.queue) >= self.maxsize:
                raise Full
            self.queue.append(item)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Take an idle item, or wait in line for one for up to ``timeout``
        seconds (forever if None).

        :raises queue.Empty: if none came in time (at once if not ``block``).
        """
        with self._lock:
            if self.queue and not self._waiters:
                return self.queue.pop()
            if not block:
                raise Empty
            waiter = _Waiter()
            self._waiters.append(waiter)
        waiter.event.wait(timeout)
        with self._lock:
            if waiter.done:
                return waiter.item
            self._waiters.remove(waiter)
        raise Empty

    def qsize(self) -> int:
        """Idle items."""
        return len(self.queue)
