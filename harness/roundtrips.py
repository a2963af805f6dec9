"""Count round trips to a real Redis by counting packed sends per connection."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import redis


class CountingConnection(redis.Connection):
    sends = 0
    #: Sends per thread, so a count can leave out background loops' ticks.
    by_thread: Counter[int] = Counter()

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sends += 1
        CountingConnection.by_thread[threading.get_ident()] += 1
        super().send_packed_command(command, check_health)


def counting_client(port: int) -> redis.Redis:
    pool = redis.ConnectionPool(
        port=port, decode_responses=True, connection_class=CountingConnection
    )
    return redis.Redis(connection_pool=pool)


class RoundTrips:
    """``with RoundTrips() as rt: ...`` then ``rt.count``.

    With ``this_thread=True`` only the entering thread's sends count: a
    request served in the test's thread, without the periodic loops (stats,
    leases, heartbeats) that may tick in other threads meanwhile."""

    def __init__(self, *, this_thread: bool = False) -> None:
        self.thread = threading.get_ident() if this_thread else None

    def _sends(self) -> int:
        if self.thread is None:
            return CountingConnection.sends
        return CountingConnection.by_thread[self.thread]

    def __enter__(self) -> RoundTrips:
        self.start = self._sends()
        return self

    def __exit__(self, *exc: object) -> None:
        self.count = self._sends() - self.start
