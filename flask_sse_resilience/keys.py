"""Every Redis key and channel name the extension uses, built in one place.

A stream's own keys carry its id as a Redis Cluster hash tag (``{<id>}``), so
the scripts and transactions over one stream stay legal on a cluster. Stream ids
are validated before any key is built (see :mod:`flask_sse_resilience.ids`).
"""

from __future__ import annotations

import dataclasses
import hashlib


def _digest(user_id: str) -> str:
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:32]


@dataclasses.dataclass(frozen=True)
class Keys:
    """Key names under one prefix (``SSE_RESILIENCE_KEY_PREFIX``)."""

    prefix: str = "sse:"

    @property
    def active(self) -> str:
        """Sorted set of active stream ids, scored by last heartbeat (ms)."""
        return f"{self.prefix}streams:active"

    @property
    def guardian_leader(self) -> str:
        """String holding the token of the worker that leads the guardian."""
        return f"{self.prefix}guardian:leader"

    @property
    def guardian_sweeps(self) -> str:
        """Counter of guardian sweeps ever run."""
        return f"{self.prefix}guardian:sweeps"

    @property
    def guardian_last(self) -> str:
        """Hash describing the last guardian sweep (when, who, what it did)."""
        return f"{self.prefix}guardian:last"

    def user_streams(self, user_id: str) -> str:
        """Sorted set of a user's open streams, scored by their expiry (ms).

        The user id is hashed: apps choose user ids, and no raw input goes
        into a key name.
        """
        return f"{self.prefix}user:{{{_digest(user_id)}}}:streams"

    def user_connections(self, user_id: str) -> str:
        """Sorted set of a user's open connections, scored by lease expiry."""
        return f"{self.prefix}user:{{{_digest(user_id)}}}:connections"

    def stream(self, stream_id: str) -> str:
        """Hash holding one stream's registry record."""
        return f"{self.prefix}stream:{{{stream_id}}}"

    def log(self, stream_id: str) -> str:
        """Redis Stream holding one stream's events."""
        return f"{self.prefix}log:{{{stream_id}}}"

    def completion(self, stream_id: str) -> str:
        """Hash holding one stream's terminal event."""
        return f"{self.prefix}completion:{{{stream_id}}}"

    def channel(self, stream_id: str) -> str:
        """Pub/sub channel announcing one stream's new events."""
        return f"{self.prefix}events:{{{stream_id}}}"

    def stream_id_from_channel(self, channel: str) -> str:
        """Return the stream id a :meth:`channel` name was built from."""
        return channel[len(self.prefix) + len("events:{") : -1]
