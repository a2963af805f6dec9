"""The producer: the one writer of a stream's events.

::

    with sse.producer(stream_id) as out:
        out.send("token", {"text": "Hel"})
        out.complete({"text": "Hello"})

Entering takes the stream's write lease and starts its heartbeat; leaving stops
the heartbeat. An exception inside the block ends the stream as ``failed`` and
propagates; leaving the block normally without a terminal event completes the
stream with ``null`` data, like a generator that returns.

A stream can be asked to stop (see :mod:`~flask_sse_resilience.control`).
:attr:`Producer.cancelled` says so without a round trip; once it is true,
``send``, ``complete`` and ``fail`` raise :class:`StreamCancelled` and write
nothing (a request this process has not heard of yet makes the write refuse
it). :meth:`Producer.cancel` ends the stream ``cancelled`` with a partial
result; a :class:`StreamCancelled` that leaves the block ends it ``cancelled``
too, without one, and goes no further::

    with sse.producer(stream_id) as out:
        text = ""
        try:
            for token in llm(prompt):      # check out.cancelled before a long call
                out.send("token", {"text": token})
                text += token
            out.complete({"text": text})
        except StreamCancelled:
            out.cancel({"text": text})     # the partial answer

Through an outage (a restart, a failover) every write is retried for
``retry_for`` seconds; each is idempotent, so none is doubled. A failover can
also lose writes Redis had acknowledged (replication is asynchronous): the
producer then finds the log behind it and re-sends what is missing from the
last :data:`REPLAY` events it keeps, so the log still holds every event once
and in order (under new ids; a client holding a lost id is told to ``reset``).
On Cluster and Sentinel, the terminal write waits for a replica
(``WAIT``) before it returns, so a result is not lost that way.
"""

from __future__ import annotations

import collections
import functools
import logging
import secrets
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from .coalescing import Coalescer, Held
from .control import request_json
from .errors import (
    LogBehindError,
    ProducerConflictError,
    StreamCancelled,
    StreamNotActiveError,
)
from .eventlog import EventLog
from .events import check_event_type, serialize
from .heartbeat import Heartbeater
from .models import StreamState
from .redisutil import UNAVAILABLE

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Subscribes to a stream's cancel requests (the fast path): ``watch(stream_id,
#: on_request)`` returns the function that unsubscribes.
Watch = Callable[[str, Callable[[dict[str, Any] | None], None]], Callable[[], None]]

#: Recent events a producer keeps to re-send if a failover loses them.
REPLAY = 1000

#: The request a producer's own :meth:`Producer.cancel` stands for, when
#: nobody asked.
_OWN_REQUEST = request_json(None, "app")


class Producer:
    """Writes one stream's events; use it as a context manager.

    Get one from :meth:`SSEResilience.producer
    <flask_sse_resilience.SSEResilience.producer>`.
    """

    def __init__(
        self,
        stream_id: str,
        *,
        log: EventLog,
        heartbeater: Heartbeater,
        max_event_bytes: int,
        on_end: Callable[[StreamState], None] | None = None,
        on_send: Callable[[], None] | None = None,
        retry_for: float = 0.0,
        watch: Watch | None = None,
        coalesce: float = 0.0,
    ) -> None:
        self.stream_id = stream_id
        self._retry_for = retry_for
        self._on_end = on_end
        self._on_send = on_send
        self._log = log
        self._heartbeater = heartbeater
        self._max_event_bytes = max_event_bytes
        self._token = secrets.token_hex(12)
        #: The number of the last event sent, and of the last one written
        #: (they differ while a coalescing window holds sends).
        self._seq: int | None = None
        self._logged = 0
        if coalesce < 0:
            raise ValueError(f"coalesce must be 0 or more seconds, got {coalesce!r}")
        self._coalescer = Coalescer(coalesce, self._write_batch) if coalesce else None
        self._recent: collections.deque[tuple[int, str, str]] = collections.deque(
            maxlen=REPLAY
        )
        #: The stream's final state once this producer ended it, else None.
        self.final_state: StreamState | None = None
        self._watch = watch
        self._unwatch: Callable[[], None] | None = None
        #: The cancel request once this process learnt of it (False before).
        self._cancel: dict[str, Any] | None | bool = False

    @property
    def cancelled(self) -> bool:
        """True once this process learnt that the stream was asked to stop
        (from the control channel, a heartbeat, a refused write, or on
        entering). Costs no round trip: check it between tokens."""
        return self._cancel is not False

    def _learn_cancel(self, request: dict[str, Any] | None = None) -> None:
        if self._cancel is False or (self._cancel is None and request):
            self._cancel = request

    def _heard(self) -> None:
        self._learn_cancel(None)

    def _raise_if_cancelled(self) -> None:
        if self._cancel is not False:
            raise StreamCancelled(
                self.stream_id, self._cancel if isinstance(self._cancel, dict) else None
            )

    def _retrying(self, call: Callable[[], T]) -> T:
        """Run ``call``; while Redis is unreachable, retry it for up to
        ``retry_for`` seconds. Safe because every write is idempotent."""
        deadline = time.monotonic() + self._retry_for
        pause = 0.1
        while True:
            try:
                return call()
            except UNAVAILABLE:
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    def _append(self, seq: int, events: list[tuple[str, str]]) -> str:
        try:
            return self._log.append_many(self.stream_id, self._token, seq, events)
        except StreamCancelled as exc:
            self._learn_cancel({"reason": exc.reason, "by": exc.by})
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

    def _write_batch(self, batch: list[Held]) -> str:
        """Write sends numbered consecutively from ``batch[0]``, in one call."""
        first = batch[0][0]
        events = [(event_type, text) for _, event_type, text in batch]
        event_id = self._write(first, lambda: self._append(first, events))
        self._recent.extend(batch)
        self._logged = batch[-1][0]
        return event_id

    def __enter__(self) -> Producer:
        """Take the write lease, listen for cancel requests, start the heartbeat.

        :raises StreamCancelled: if the stream has already ended cancelled.
        :raises StreamNotActiveError: if it is missing or has ended otherwise.
        """
        # Listen first: a request made while we claim is heard either way.
        if self._watch is not None:
            self._unwatch = self._watch(self.stream_id, self._learn_cancel)

        def claim() -> int:
            claimed = self._log.claim(self.stream_id, self._token)
            if claimed.cancel is not None:  # stop pressed before we started
                self._learn_cancel(claimed.cancel)
            self._log.wait_replicated(self.stream_id)  # a failover keeps it
            return claimed.seq

        try:
            self._seq = self._logged = self._retrying(claim)
        except BaseException:
            self._stop_watching()
            raise
        self._heartbeater.add(self.stream_id, self._heard)
        return self

    def _stop_watching(self) -> None:
        unwatch, self._unwatch = self._unwatch, None
        if unwatch is not None:
            unwatch()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        try:
            return self._exit(exc_type, exc)
        finally:
            if self._coalescer is not None:
                self._coalescer.close()

    def _exit(
        self, exc_type: type[BaseException] | None, exc: BaseException | None
    ) -> bool:
        self._heartbeater.discard(self.stream_id, self._heard)
        self._stop_watching()
        ours = isinstance(exc, StreamCancelled) and exc.stream_id == self.stream_id
        if self.final_state is not None or self._seq is None:
            return ours
        if exc_type is not None and not issubclass(exc_type, Exception):
            # GeneratorExit, KeyboardInterrupt...: the process is going away;
            # the guardian ends the stream once its heartbeat goes stale.
            return False
        try:
            try:
                if ours or self.cancelled:
                    raise StreamCancelled(self.stream_id)
                if exc_type is None:
                    self.complete(None)
                else:
                    self.fail({"reason": "error", "error": exc_type.__name__})
            except StreamCancelled:  # asked to stop: the one end left
                self.cancel()
        except (StreamNotActiveError, *UNAVAILABLE):  # type: ignore[misc]
            if exc_type is None:
                raise
            log.warning(
                "could not mark stream %s failed", self.stream_id, exc_info=True
            )
        return ours

    def send(self, event_type: str, data: Any = None) -> str:
        """Log and deliver one event; return its id (the SSE ``id:``), or
        ``""`` when a coalescing window holds it (written within the window,
        or by :meth:`flush` and every terminal write).

        :param event_type: 1-64 characters, no control characters, and not one
            of the reserved types (``connected``, ``reset``, ``completed``,
            ``failed``, ``orphaned``, ``cancelled``).
        :param data: any JSON-serializable value, at most
            ``SSE_RESILIENCE_MAX_EVENT_BYTES`` once serialized.
        :raises InvalidEventError: for a bad type or data; nothing is written.
        :raises StreamCancelled: once the stream was asked to stop; nothing
            is written.
        :raises StreamNotActiveError: if the stream has ended or expired.
        :raises ProducerConflictError: if another producer took the stream over.

        If Redis fails mid-call the error propagates and the event may or may
        not be logged; calling ``send`` again with the same event is safe, it is
        never logged twice. With coalescing, a failed background write is
        raised by the next call instead (this event was not taken), and the
        held events are written again by the next flush.
        """
        check_event_type(event_type)
        text = serialize(data, self._max_event_bytes)
        seq = self._next_seq()
        self._raise_if_cancelled()
        full = False
        if self._coalescer is None:
            event_id = self._write_batch([(seq, event_type, text)])
        else:
            full = self._coalescer.add((seq, event_type, text))
            event_id = ""
        self._seq = seq
        if full:
            self._coalescer.flush()  # type: ignore[union-attr]
        if self._on_send is not None:
            self._on_send()
        return event_id

    def flush(self) -> None:
        """Write the sends a coalescing window holds, now (``complete``,
        ``fail`` and ``cancel`` do it first by themselves).

        :raises StreamCancelled: if the stream was asked to stop.
        """
        if self._coalescer is not None:
            self._coalescer.flush()

    def complete(self, data: Any = None) -> str:
        """End the stream as ``completed`` with ``data``; return the event id.

        :raises StreamCancelled: if it was asked to stop (nothing written).
        """
        self._raise_if_cancelled()
        return self._finish(StreamState.COMPLETED, data)

    def fail(self, data: Any = None) -> str:
        """End the stream as ``failed`` with ``data``; return the event id.

        :raises StreamCancelled: if it was asked to stop (nothing written).
        """
        self._raise_if_cancelled()
        return self._finish(StreamState.FAILED, data)

    def cancel(self, partial: Any = None) -> str:
        """End the stream ``cancelled``; return the event id ("" if it had
        already ended cancelled without this producer: fenced).

        Its data is the request (``{"reason", "by"}``; ``by: "app"`` when
        nobody asked and the producer stops by itself) plus ``partial`` (say,
        the text so far) unless it is None.
        """
        try:
            return self._finish(StreamState.CANCELLED, partial)
        except StreamCancelled:  # the guardian fenced it already
            self.final_state = StreamState.CANCELLED
            return ""

    def _next_seq(self) -> int:
        if self._seq is None:
            raise RuntimeError("use the producer as a context manager: with ...")
        if self.final_state is not None:
            raise StreamNotActiveError(
                f"stream {self.stream_id!r} already ended as {self.final_state.value}"
            )
        return self._seq + 1

    def _flush_before_end(self, state: StreamState) -> None:
        """Write what is held before the terminal event; a stream asked to
        stop ends without it (its writes are refused anyway)."""
        if self._coalescer is None:
            return
        try:
            if state is not StreamState.CANCELLED:
                self._coalescer.flush()
                return
            try:
                self._coalescer.flush()
            except StreamCancelled:
                pass
        finally:
            if state is StreamState.CANCELLED:
                self._coalescer.discard()
                self._seq = self._logged

    def _finish(self, state: StreamState, data: Any) -> str:
        text = serialize(data, self._max_event_bytes)
        self._next_seq()  # not ended yet
        self._flush_before_end(state)
        seq = self._next_seq()

        def finish() -> str:
            event_id = self._log.finish(
                self.stream_id,
                state=state,
                event_type=state.value,
                data_json=text,
                token=self._token,
                seq=seq,
                request_json=_OWN_REQUEST,
            )
            # If the master dies before a replica has it, this raises and
            # the (idempotent) finish runs again on the new master.
            self._log.wait_replicated(self.stream_id)
            return event_id

        try:
            event_id = self._write(seq, finish)
        except StreamCancelled as exc:
            self._learn_cancel({"reason": exc.reason, "by": exc.by})
            raise
        self._seq = seq
        self.final_state = state
        if self._on_end is not None:
            self._on_end(state)
        return event_id
