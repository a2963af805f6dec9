"""Count round trips to a real Redis by counting packed sends per connection."""

from __future__ import annotations

from typing import Any

import redis


class CountingConnection(redis.Connection):
    sends = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sends += 1
        super().send_packed_command(command, check_health)


def counting_client(port: int) -> redis.Redis:
    pool = redis.ConnectionPool(
        port=port, decode_responses=True, connection_class=CountingConnection
    )
    return redis.Redis(connection_pool=pool)


class RoundTrips:
    """``with RoundTrips() as rt: ...`` then ``rt.count``."""

    def __enter__(self) -> RoundTrips:
        self.start = CountingConnection.sends
        return self

    def __exit__(self, *exc: object) -> None:
        self.count = CountingConnection.sends - self.start
