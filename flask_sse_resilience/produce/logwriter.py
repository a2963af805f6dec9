"""A producer's writes to its stream's log, and their state (see
:mod:`~flask_sse_resilience.produce.producer`).

:class:`LogWriter` is the write side's one state machine: it claims the
stream, numbers every event, holds what a coalescing window holds (see
:mod:`~flask_sse_resilience.produce.coalescer`), knows what the log has, writes
what is held before the end (past a cancel request when the end is
``cancelled``), and ends the stream. The producer checks what it is given and
learns of cancel requests; it never reads or sets the writer's state.

Through an outage (a restart, a failover) every write is retried for
``retry_for`` seconds; each is idempotent, so none is doubled. A write that
a full Redis refuses (``OOM``) fails at once. A failover can
also lose writes Redis had acknowledged (replication is asynchronous): the
writer then finds the log behind it and re-sends what is missing from the
last :data:`REPLAY` events it keeps, so the log still holds every event once
and in order (under new ids; a client holding a lost id is told to
``reset``). On Cluster and Sentinel, the claim and the terminal write wait
for a replica (``WAIT``) before they return, so neither is lost that way.
"""

from __future__ import annotations

import collections
import functools
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import (
    LogBehindError,
    ProducerConflictError,
    StreamCancelled,
    StreamNotActiveError,
)
from ..models import StreamState
from ..redisio import outages
from ..redisio.failures import UNAVAILABLE, is_out_of_memory
from ..store.eventlog import EventLog
from .coalescer import Coalescer, Numbered

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Recent events a producer keeps to re-send if a failover loses them.
REPLAY = 1000


class LogWriter:
    """Writes one producer's events under a write lease of its own, and
    keeps their state.

    Unclaimed until :meth:`claim`, then open until :meth:`end` (or
    :meth:`fenced`); :attr:`ended` says how it ended. ``coalesce`` (seconds,
    0 for none) is the window that holds sends, with its leading edge unless
    ``coalesce_leading`` is False; ``on_cancel`` hears a cancel
    request that the claim found or that refused a write.
    """

    def __init__(
        self,
        log: EventLog,
        stream_id: str,
        *,
        retry_for: float,
        on_cancel: Callable[[dict[str, Any]], None],
        coalesce: float = 0.0,
        coalesce_leading: bool = True,
    ) -> None:
        if coalesce < 0:
            raise ValueError(f"coalesce must be 0 or more seconds, got {coalesce!r}")
        self.log = log
        self.stream_id = stream_id
        #: The write lease this writer claims the stream with.
        self.token = secrets.token_hex(12)
        self.retry_for = retry_for
        self._on_cancel = on_cancel
        #: The number of the last event sent, None before the claim (past
        #: ``_logged`` while a coalescing window holds sends).
        self._sent: int | None = None
        #: The number of the last event written.
        self._logged = 0
        #: Set while what is held is written before the stream ends
        #: ``cancelled``: those writes pass a pending cancel request.
        self._cancelling = False
        self._ended: StreamState | None = None
        self._recent: collections.deque[Numbered] = collections.deque(maxlen=REPLAY)
        self._held = (
            Coalescer(coalesce, self._write_batch, leading=coalesce_leading)
            if coalesce
            else None
        )

    @property
    def ended(self) -> StreamState | None:
        """The stream's final state once this writer ended it, else None."""
        return self._ended

    @property
    def open(self) -> bool:
        """True from the claim until the end."""
        return self._sent is not None and self._ended is None

    def claim(self) -> None:
        """Take the stream's write lease (retrying through outages); numbering
        goes on from where the log is. A cancel request made before goes to
        ``on_cancel``.

        :raises StreamCancelled: if the stream has ended cancelled.
        :raises StreamNotActiveError: if it is missing or has ended otherwise.
        """

        def claim() -> int:
            claimed = self.log.claim(self.stream_id, self.token)
            if claimed.cancel is not None:  # stop pressed before we started
                self._on_cancel(claimed.cancel)
            self.log.wait_replicated(self.stream_id)  # a failover keeps it
            return claimed.seq

        self._sent = self._logged = self._retrying(claim)

    def check_open(self) -> None:
        """:raises RuntimeError: before the claim.
        :raises StreamNotActiveError: once the stream has ended."""
        self._next()

    def send(self, event_type: str, text: str) -> tuple[int, str]:
        """Number one event and write it, or hand it to the coalescing window
        (which may write it at once); return its number and its log id (``""``
        with a window, written or not).

        :raises: the error of a background write that failed since the last
            call (this event is not taken), or of this write.
        """
        seq = self._next()
        if self._held is None:
            event_id = self._write_batch([(seq, event_type, text)])
            self._sent = seq
            return seq, event_id
        write_now = self._held.add((seq, event_type, text))
        self._sent = seq
        if write_now:
            self._held.flush_full()
        return seq, ""

    def flush(self) -> None:
        """Write what a coalescing window holds, now."""
        if self._held is not None:
            self._held.flush()

    def snapshot(self, data_json: str) -> str:
        """Write what is held, then store ``data_json`` as the stream's state
        after the last event written; return that event's log id."""
        self.flush()
        seq = self._logged
        store = functools.partial(
            self.log.snapshot, self.stream_id, self.token, seq, data_json
        )
        # Past the events before it: a log that lost some gets them again.
        return self._write(seq + 1, store)

    def end(self, state: StreamState, data_json: str, *, request_json: str) -> str:
        """Write what is held, then the terminal event; return its log id.

        Ending ``cancelled``, what is held still goes out first (past the
        request), so a partial result matches what followers received; unless
        the stream has ended already (fenced), which drops it.
        ``request_json``: the request an end as ``cancelled`` stands for when
        nobody asked.

        :raises StreamCancelled: if a cancel was asked for and ``state`` is
            not ``cancelled``, or the stream ended cancelled (fenced).
        """
        self._next()  # not ended yet
        self._flush_before_end(state)
        seq = self._next()

        def finish() -> str:
            event_id = self.log.finish(
                self.stream_id,
                state=state,
                event_type=state.value,
                data_json=data_json,
                token=self.token,
                seq=seq,
                request_json=request_json,
            )
            # If the master dies before a replica has it, this raises and
            # the (idempotent) finish runs again on the new master.
            self.log.wait_replicated(self.stream_id)
            return event_id

        try:
            event_id = self._write(seq, finish)
        except StreamCancelled as exc:
            self._refused(exc)
            raise
        self._sent = seq
        self._ended = state
        return event_id

    def fenced(self) -> None:
        """The stream ended ``cancelled`` without this writer: write no more."""
        self._ended = StreamState.CANCELLED

    def close(self) -> None:
        """Stop the coalescing window's timer; what it still holds is not
        written."""
        if self._held is not None:
            self._held.close()

    def _next(self) -> int:
        if self._sent is None:
            raise RuntimeError("use the producer as a context manager: with ...")
        if self._ended is not None:
            raise StreamNotActiveError(
                f"stream {self.stream_id!r} already ended as {self._ended.value}"
            )
        return self._sent + 1

    def _flush_before_end(self, state: StreamState) -> None:
        if self._held is None:
            return
        if state is not StreamState.CANCELLED:
            self._held.flush()
            return
        self._cancelling = True
        try:
            self._held.flush(earlier_errors=False)
        except StreamCancelled:
            self._held.discard()
            self._sent = self._logged
        finally:
            self._cancelling = False

    def _retrying(self, call: Callable[[], T]) -> T:
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

    def _refused(self, exc: StreamCancelled) -> None:
        """Tell the producer about the request that refused a write."""
        self._on_cancel({"reason": exc.reason, "by": exc.by})

    def _append(self, seq: int, events: list[tuple[str, str]]) -> str:
        try:
            return self.log.append_many(
                self.stream_id, self.token, seq, events, cancelling=self._cancelling
            )
        except StreamCancelled as exc:
            self._refused(exc)
            raise

    def _write(self, seq: int, call: Callable[[], T]) -> T:
        """Run write number ``seq`` (retrying through outages); if the log
        lost events before it, re-send them first."""
        try:
            return self._retrying(call)
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
                self._retrying(resend)
            return self._retrying(call)

    def _write_batch(self, batch: list[Numbered]) -> str:
        """Write events numbered consecutively from ``batch[0]``, in one call;
        return the last one's log id."""
        first = batch[0][0]
        events = [(event_type, text) for _, event_type, text in batch]
        event_id = self._write(first, lambda: self._append(first, events))
        self._recent.extend(batch)
        self._logged = batch[-1][0]
        return event_id
