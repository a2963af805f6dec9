"""A producer's writes to its stream's log (see
:mod:`~flask_sse_resilience.produce.producer`).

Through an outage (a restart, a failover) every write is retried for
``retry_for`` seconds; each is idempotent, so none is doubled. A write that
a full Redis refuses (``OOM``) fails at once. A failover can
also lose writes Redis had acknowledged (replication is asynchronous): the
producer then finds the log behind it and re-sends what is missing from the
last :data:`REPLAY` events it keeps, so the log still holds every event once
and in order (under new ids; a client holding a lost id is told to
``reset``). On Cluster and Sentinel, the terminal write waits for a replica
(``WAIT``) before it returns, so a result is not lost that way.
"""

from __future__ import annotations

import collections
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import LogBehindError, ProducerConflictError, StreamCancelled
from ..redisio import outages
from ..redisio.failures import UNAVAILABLE, is_out_of_memory
from ..store.eventlog import EventLog

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Recent events a producer keeps to re-send if a failover loses them.
REPLAY = 1000

#: One event to write: its sequence number, type and JSON data.
Numbered = tuple[int, str, str]


class LogWriter:
    """Writes one producer's events under its write lease ``token``.

    ``on_cancel`` hears a cancel request that refused a write.
    """

    def __init__(
        self,
        log: EventLog,
        stream_id: str,
        token: str,
        *,
        retry_for: float,
        on_cancel: Callable[[dict[str, Any]], None],
    ) -> None:
        self.log = log
        self.stream_id = stream_id
        self.token = token
        self.retry_for = retry_for
        self._on_cancel = on_cancel
        #: The number of the last event written.
        self.logged = 0
        #: Set while the producer writes what it holds before ending the
        #: stream ``cancelled``: those writes pass a pending cancel request.
        self.cancelling = False
        self._recent: collections.deque[Numbered] = collections.deque(maxlen=REPLAY)

    def retrying(self, call: Callable[[], T]) -> T:
        """Run ``call``; while Redis is unreachable, retry it for up to
        ``retry_for`` seconds. Safe because every write is idempotent.

        A write refused because Redis is full (``OOM``) is not retried: it
        raises at once, and so does the error that outlasts ``retry_for``,
        after it is reported to the outage log. A full Redis is rarely
        freed within seconds (an operator, or streams expiring, must free
        memory), and a producer waiting for it would hold its generation,
        and its followers, with nothing to show for it.
        """
        deadline = time.monotonic() + self.retry_for
        pause = 0.1
        while True:
            try:
                return call()
            except UNAVAILABLE as exc:
                if is_out_of_memory(exc) or time.monotonic() + pause > deadline:
                    outages.of(self.log.redis).failed(exc)
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    def refused(self, exc: StreamCancelled) -> None:
        """Tell the producer about the request that refused a write."""
        self._on_cancel({"reason": exc.reason, "by": exc.by})

    def _append(self, seq: int, events: list[tuple[str, str]]) -> str:
        try:
            return self.log.append_many(
                self.stream_id, self.token, seq, events, cancelling=self.cancelling
            )
        except StreamCancelled as exc:
            self.refused(exc)
            raise

    def write(self, seq: int, call: Callable[[], T]) -> T:
        """Run write number ``seq`` (retrying through outages); if the log
        lost events before it, re-send them first."""
        try:
            return self.retrying(call)
        except LogBehindError as exc:
            missing = [e for e in self._recent if exc.logged < e[0] < seq]
            if len(missing) != seq - 1 - exc.logged:
                raise ProducerConflictError(
                    f"stream {self.stream_id!r} lost {seq - 1 - exc.logged} "
                    f"events, more than the last {REPLAY} kept to re-send"
                ) from exc
            log.warning("stream %s: Redis lost %d acknowledged events (failover);"
                        " re-sending them", self.stream_id, len(missing))  # fmt: skip
            for number, event_type, text in missing:
                resend = functools.partial(self._append, number, [(event_type, text)])
                self.retrying(resend)
            return self.retrying(call)

    def write_batch(self, batch: list[Numbered]) -> str:
        """Write events numbered consecutively from ``batch[0]``, in one call;
        return the last one's log id."""
        first = batch[0][0]
        events = [(event_type, text) for _, event_type, text in batch]
        event_id = self.write(first, lambda: self._append(first, events))
        self._recent.extend(batch)
        self.logged = batch[-1][0]
        return event_id
