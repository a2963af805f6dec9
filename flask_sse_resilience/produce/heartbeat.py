"""Batched heartbeats: one pipeline per process per interval, whatever the count.

Producers register the streams they are writing; a background thread (a
greenlet under gevent) refreshes all of them in one round trip every heartbeat
interval. A stream stays alive only while its producer does: a client that is
merely connected does not keep a dead producer's stream alive. The same round
trip reads each stream's cancel flag: the producer's slow path to a cancel
request (see :mod:`~flask_sse_resilience.store.control`), which works when the
pub/sub fast path does not.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from ..redisio import outages
from ..redisio.loops import Periodic
from ..store.registry import StreamRegistry
from ..store.scripts import Beat

#: Called with a stream id when its heartbeat finds a cancel request.
OnCancel = Callable[[], None]


class Heartbeater:
    """Keeps the heartbeat of this process's live streams fresh."""

    def __init__(self, registry: StreamRegistry, interval: float) -> None:
        self.registry = registry
        self.interval = interval
        self.pid = os.getpid()
        #: Per stream, one entry per add(): what to call on a cancel request.
        self._streams: dict[str, list[OnCancel | None]] = {}
        self._lock = threading.Lock()
        # After a failure, retry within half a second, not a whole interval,
        # so that once Redis is back our streams look alive again at once
        # (the guardian gives them a stale threshold for that; see guardian).
        self.loop = Periodic(
            "heartbeat", self.beat, interval, retry=0.25, max_retry=0.5,
            report=outages.of(registry.redis).failed,
        )  # fmt: skip
        #: Pipelines sent so far; for tests and metrics.
        self.beats = 0

    def add(self, stream_id: str, on_cancel: OnCancel | None = None) -> None:
        """Keep ``stream_id`` alive until a matching :meth:`discard`; call
        ``on_cancel`` whenever a heartbeat finds the stream asked to cancel
        (or ended cancelled)."""
        with self._lock:
            self._streams.setdefault(stream_id, []).append(on_cancel)
        self.loop.ensure()

    def discard(self, stream_id: str, on_cancel: OnCancel | None = None) -> None:
        """Undo one :meth:`add` (with the same ``on_cancel``)."""
        with self._lock:
            entries = self._streams.get(stream_id)
            if entries is None:
                return
            if on_cancel in entries:
                entries.remove(on_cancel)
            if not entries:
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
        if not stream_ids:
            return
        beats = self.registry.heartbeat(stream_ids)
        self.beats += 1
        for stream_id, beat in zip(stream_ids, beats, strict=True):
            if beat is Beat.CANCELLING:
                with self._lock:
                    calls = list(self._streams.get(stream_id, ()))
                for call in calls:
                    if call is not None:
                        call()

    def stop(self) -> None:
        """Stop the background loop."""
        self.loop.stop()
