"""Batched heartbeats: one pipeline per process per interval, whatever the count.

Producers register the streams they are writing; a background thread (a
greenlet under gevent) refreshes all of them in one round trip every heartbeat
interval. A stream stays alive only while its producer does: a client that is
merely connected does not keep a dead producer's stream alive.
"""

from __future__ import annotations

import collections
import os
import threading

from .loops import Periodic
from .registry import StreamRegistry


class Heartbeater:
    """Keeps the heartbeat of this process's live streams fresh."""

    def __init__(self, registry: StreamRegistry, interval: float) -> None:
        self.registry = registry
        self.interval = interval
        self.pid = os.getpid()
        self._streams: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        # After a failure, retry within half a second, not a whole interval,
        # so that once Redis is back our streams look alive again at once
        # (the guardian gives them a stale threshold for that; see guardian).
        self.loop = Periodic(
            "heartbeat", self.beat, interval, retry=0.25, max_retry=0.5
        )
        #: Pipelines sent so far; for tests and metrics.
        self.beats = 0

    def add(self, stream_id: str) -> None:
        """Keep ``stream_id`` alive until a matching :meth:`discard`."""
        with self._lock:
            self._streams[stream_id] += 1
        self.loop.ensure()

    def discard(self, stream_id: str) -> None:
        """Undo one :meth:`add`."""
        with self._lock:
            self._streams[stream_id] -= 1
            if self._streams[stream_id] <= 0:
                del self._streams[stream_id]

    @property
    def streams(self) -> int:
        """Number of streams this process is producing right now."""
        with self._lock:
            return len(self._streams)

    def beat(self) -> None:
        """Refresh every registered stream now, in one round trip."""
        with self._lock:
            stream_ids = list(self._streams)
        if stream_ids:
            self.registry.heartbeat(stream_ids)
            self.beats += 1

    def stop(self) -> None:
        """Stop the background loop."""
        self.loop.stop()
