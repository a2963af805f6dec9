"""Every Redis key and channel name the extension uses, built in one place.

Streams are spread over ``shards`` (64 by default) by a CRC32 of their id, and
every key of one stream (record, log, completion, channel) carries its shard as
a Redis Cluster hash tag: ``<prefix>{s<shard>}:stream:<id>``. The active index
is one sorted set per shard under the same tag, so each write that touches a
stream and its index entry (register, heartbeat, terminal write, orphaning) is
still one atomic script on one slot, on a cluster as on a single Redis, while
the index is spread over as many slots as there are shards instead of being one
hot key. Stream ids are validated before any key is built (see
:mod:`flask_sse_resilience.ids`), and no id contains ``:``.

A user's keys are tagged by a hash of the user id; the guardian's keys share
the ``{guardian}`` tag.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zlib

#: Shards of the active index unless configured (``SSE_RESILIENCE_SHARDS``).
DEFAULT_SHARDS = 64


def _digest(user_id: str) -> str:
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:32]


def key_digest(user_id: str, key: str) -> str:
    """A stream key scoped to its owner, hashed: what names its pointer."""
    return hashlib.sha256(f"{user_id}\0{key}".encode()).hexdigest()[:32]


@dataclasses.dataclass(frozen=True)
class Keys:
    """Key names under one prefix (``SSE_RESILIENCE_KEY_PREFIX``)."""

    prefix: str = "sse:"
    #: Every host of a deployment must use the same number: it decides where
    #: each stream's keys live.
    shards: int = DEFAULT_SHARDS

    def shard(self, stream_id: str) -> int:
        """The shard of a stream: the same on every host and process."""
        return zlib.crc32(stream_id.encode("utf-8")) % self.shards

    def _tag(self, shard: int) -> str:
        return f"{self.prefix}{{s{shard}}}:"

    def active(self, shard: int) -> str:
        """Sorted set of one shard's active stream ids, scored by last
        heartbeat (ms)."""
        return f"{self._tag(shard)}active"

    def active_of(self, stream_id: str) -> str:
        """The active index shard holding ``stream_id``."""
        return self.active(self.shard(stream_id))

    def watch(self, shard: int) -> str:
        """Hash of when the guardian last swept one shard (``at``) and since
        when it has done so without a gap (``since``), in Redis ms."""
        return f"{self._tag(shard)}watch"

    def watch_of(self, stream_id: str) -> str:
        """The guardian's watch of ``stream_id``'s shard."""
        return self.watch(self.shard(stream_id))

    def cancelling(self, shard: int) -> str:
        """Sorted set of one shard's streams with a pending cancel request,
        scored by when it came (ms): the guardian fences them after the grace."""
        return f"{self._tag(shard)}cancelling"

    def abandon(self, shard: int) -> str:
        """Sorted set of one shard's streams cancelled when abandoned, scored
        by when to look at their followers next (ms)."""
        return f"{self._tag(shard)}abandon"

    def key_shard(self, user_id: str, key: str) -> int:
        """The shard of every stream ``user_id`` opens with ``key``: their
        ids are chosen to land there, so the key's pointer and the streams
        share one slot and a keyed open is one atomic script."""
        return zlib.crc32(key_digest(user_id, key).encode()) % self.shards

    def key_pointer(self, user_id: str, key: str) -> str:
        """String holding the id of the latest stream ``user_id`` opened with
        ``key`` (in :meth:`key_shard`)."""
        shard = self.key_shard(user_id, key)
        return f"{self._tag(shard)}key:{key_digest(user_id, key)}"

    def active_all(self) -> list[str]:
        """Every shard of the active index, in shard order."""
        return [self.active(shard) for shard in range(self.shards)]

    @property
    def guardian_leader(self) -> str:
        """String holding the token of the worker that leads the guardian."""
        return f"{self.prefix}{{guardian}}:leader"

    @property
    def guardian_sweeps(self) -> str:
        """Counter of guardian sweeps ever run."""
        return f"{self.prefix}{{guardian}}:sweeps"

    @property
    def guardian_last(self) -> str:
        """Hash describing the last guardian sweep (when, who, what it did)."""
        return f"{self.prefix}{{guardian}}:last"

    def stats_minute(self, minute: int) -> str:
        """Hash of one minute's counts (``minute`` since the Unix epoch)."""
        return f"{self.prefix}{{stats}}:m:{minute}"

    @property
    def stats_workers(self) -> str:
        """Hash of each serving process's client count."""
        return f"{self.prefix}{{stats}}:workers"

    def check(self, tag: str) -> str:
        """A throwaway string ``flask sse check`` writes, reads and deletes
        to see that Redis takes writes; ``tag`` picks its cluster slot."""
        return f"{self.prefix}{{{tag}}}:check"

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
        return f"{self._tag(self.shard(stream_id))}stream:{stream_id}"

    def log(self, stream_id: str) -> str:
        """Redis Stream holding one stream's events."""
        return f"{self._tag(self.shard(stream_id))}log:{stream_id}"

    def completion(self, stream_id: str) -> str:
        """Hash holding one stream's terminal event."""
        return f"{self._tag(self.shard(stream_id))}completion:{stream_id}"

    def snapshot(self, stream_id: str) -> str:
        """String holding a producer's latest snapshot of a stream (``seq``,
        log id and JSON data, one per line), for clients that join late."""
        return f"{self._tag(self.shard(stream_id))}snapshot:{stream_id}"

    def stream_connections(self, stream_id: str) -> str:
        """Sorted set of the leases of the connections following a stream,
        scored by lease expiry (see ``leases``)."""
        return f"{self._tag(self.shard(stream_id))}connections:{stream_id}"

    def channel(self, stream_id: str) -> str:
        """Pub/sub channel announcing one stream's new events."""
        return f"{self._tag(self.shard(stream_id))}events:{stream_id}"

    def control(self, stream_id: str) -> str:
        """Pub/sub channel carrying cancel requests to the stream's producer."""
        return f"{self._tag(self.shard(stream_id))}control:{stream_id}"

    @staticmethod
    def is_control(channel: str) -> bool:
        """True for a :meth:`control` channel name."""
        return ":control:" in channel

    @property
    def stream_pattern(self) -> str:
        """``SCAN`` pattern matching every stream record key."""
        return f"{self.prefix}{{s*}}:stream:*"

    @staticmethod
    def stream_id_from_key(key: str) -> str:
        """Return the stream id a :meth:`stream` key was built from."""
        return key.rsplit(":", 1)[1]

    def stream_id_from_channel(self, channel: str) -> str:
        """Return the stream id a :meth:`channel` (or :meth:`control`) name
        was built from."""
        return channel.rsplit(":", 1)[1]
