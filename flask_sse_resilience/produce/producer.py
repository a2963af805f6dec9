"""The producer: the one writer of a stream's events.

::

    with sse.producer(stream_id) as out:
        out.send("token", {"text": "Hel"})
        out.complete({"text": "Hello"})

Entering takes the stream's write lease and starts its heartbeat; leaving stops
the heartbeat. An exception inside the block ends the stream as ``failed`` and
propagates; leaving the block normally without a terminal event completes the
stream with ``null`` data, like a generator that returns.

A stream can be asked to stop (see :mod:`~flask_sse_resilience.store.control`).
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

The producer checks what it is given and learns of cancel requests; its
:class:`~flask_sse_resilience.produce.logwriter.LogWriter` does the writing and
owns its state: sends may be held for a few milliseconds and written together
(see :mod:`~flask_sse_resilience.produce.coalescer`), and writes ride out outages
and lossy failovers. Snapshots serve late joiners (see
:mod:`~flask_sse_resilience.produce.snapshots`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

from ..errors import InvalidEventError, StreamCancelled, StreamNotActiveError
from ..models import StreamState
from ..redisio.failures import UNAVAILABLE
from ..store.control import CancelFlag, request_json
from ..store.eventlog import EventLog
from .eventcheck import check_event_type, serialize
from .heartbeat import Heartbeater
from .logwriter import LogWriter
from .snapshots import AutoSnapshot

log = logging.getLogger(__name__)

#: Subscribes to a stream's cancel requests (the fast path):
#: ``subscribe_cancels(stream_id, on_request)`` returns the function that
#: unsubscribes.
SubscribeCancels = Callable[
    [str, Callable[[dict[str, Any] | None], None]], Callable[[], None]
]

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
        subscribe_cancels: SubscribeCancels | None = None,
        coalesce: float = 0.0,
        coalesce_leading: bool = True,
        snapshots: AutoSnapshot | None = None,
    ) -> None:
        self.stream_id = stream_id
        self._on_end = on_end
        self._on_send = on_send
        self._heartbeater = heartbeater
        self._max_event_bytes = max_event_bytes
        #: The cancel request, once this process learnt of it.
        self._flag = CancelFlag(stream_id)
        self._writer = LogWriter(
            log,
            stream_id,
            retry_for=retry_for,
            on_cancel=self._flag.learn,
            coalesce=coalesce,
            coalesce_leading=coalesce_leading,
        )
        self._snapshots = snapshots
        self._folded = snapshots.initial if snapshots is not None else None
        self._subscribe_cancels = subscribe_cancels
        self._unsubscribe_cancels: Callable[[], None] | None = None

    @property
    def final_state(self) -> StreamState | None:
        """The stream's final state once this producer ended it, else None."""
        return self._writer.ended

    @property
    def cancelled(self) -> bool:
        """True once this process learnt that the stream was asked to stop
        (from the control channel, a heartbeat, a refused write, or on
        entering). Costs no round trip: check it between tokens."""
        return self._flag.raised

    def __enter__(self) -> Producer:
        """Take the write lease, listen for cancel requests, start the heartbeat.

        :raises StreamCancelled: if the stream has already ended cancelled.
        :raises StreamNotActiveError: if it is missing or has ended otherwise.
        """
        # Listen first: a request made while we claim is heard either way.
        if self._subscribe_cancels is not None:
            subscribe = self._subscribe_cancels
            self._unsubscribe_cancels = subscribe(self.stream_id, self._flag.learn)
        try:
            self._writer.claim()
        except BaseException:
            self._unsubscribe()
            raise
        self._heartbeater.add(self.stream_id, self._flag.learn)
        return self

    def _unsubscribe(self) -> None:
        unsubscribe, self._unsubscribe_cancels = self._unsubscribe_cancels, None
        if unsubscribe is not None:
            unsubscribe()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        try:
            return self._exit(exc_type, exc)
        finally:
            self._writer.close()

    def _exit(
        self, exc_type: type[BaseException] | None, exc: BaseException | None
    ) -> bool:
        self._heartbeater.discard(self.stream_id, self._flag.learn)
        self._unsubscribe()
        ours = isinstance(exc, StreamCancelled) and exc.stream_id == self.stream_id
        if not self._writer.open:
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
        except (StreamNotActiveError, *UNAVAILABLE) as error:  # type: ignore[misc]
            if exc_type is None:
                raise
            # Redis unavailable or full: the write reported it to the outage
            # log, whose one line says this happens; one line per stream
            # would grow with the load.
            level = logging.INFO if isinstance(error, UNAVAILABLE) else logging.WARNING
            # No traceback: the app's own exception goes on to the app.
            log.log(level, "could not mark stream %s failed (%s); the guardian "
                    "ends it once its heartbeat is stale",
                    self.stream_id, error)  # fmt: skip
        return ours

    def send(self, event_type: str, data: Any = None) -> str:
        """Log and deliver one event; return its id (the SSE ``id:``), or
        ``""`` when a coalescing window holds it (written within the window,
        or by :meth:`flush` and every terminal write).

        :param event_type: 1-64 characters, no control characters, and not one
            of :data:`~flask_sse_resilience.produce.eventcheck.RESERVED_TYPES`.
        :param data: any JSON-serializable value, at most
            ``SSE_RESILIENCE_MAX_EVENT_BYTES`` once serialized.
        :raises InvalidEventError: for a bad type or data; nothing is written.
        :raises StreamCancelled: once the stream was asked to stop; nothing
            is written.
        :raises StreamNotActiveError: if the stream has ended or expired.
        :raises ProducerConflictError: if another producer took the stream over.
        :raises redis.exceptions.OutOfMemoryError: at once, not retried, if
            Redis is full (``maxmemory`` under ``noeviction``); nothing was
            written.

        If Redis fails mid-call (past ``retry_for``) the error propagates and
        the event may or may not be logged; calling ``send`` again with the
        same event is safe, it is never logged twice. With coalescing, a
        failed background write is raised by the next call instead (this
        event was not taken), and the held events are written again by the
        next flush.
        """
        check_event_type(event_type)
        text = serialize(data, self._max_event_bytes)
        self._writer.check_open()
        self._flag.check()
        seq, event_id = self._writer.send(event_type, text)
        if self._on_send is not None:
            self._on_send()
        if self._snapshots is not None:
            self._keep_snapshot(seq, event_type, data)
        return event_id

    def _keep_snapshot(self, seq: int, event_type: str, data: Any) -> None:
        assert self._snapshots is not None
        self._folded = self._snapshots.fold(self._folded, event_type, data)
        if seq % self._snapshots.every == 0:
            try:
                self.snapshot(self._folded)
            except (InvalidEventError, StreamNotActiveError, *UNAVAILABLE) as exc:  # type: ignore[misc]
                # The event is sent (a snapshot over the size limit, a stream
                # that is stopping, an outage: none makes it unsent).
                log.warning(
                    "stream %s: no snapshot at %d: %s", self.stream_id, seq, exc
                )

    def snapshot(self, data: Any) -> str:
        """Store ``data`` as the stream's state after every event sent so far
        (say, the text so far), writing held sends first; return the id of the
        last event it covers.

        A client that connects without a cursor starts from the latest
        snapshot (one ``snapshot`` event), then follows live. See
        :mod:`~flask_sse_resilience.produce.snapshots`.

        :raises InvalidEventError: if ``data`` is not JSON or too large.
        :raises StreamCancelled: once the stream was asked to stop.
        :raises StreamNotActiveError: if the stream has ended.
        """
        text = serialize(data, self._max_event_bytes)
        self._writer.check_open()
        self._flag.check()
        return self._writer.snapshot(text)

    def flush(self) -> None:
        """Write the sends a coalescing window holds, now (``complete``,
        ``fail`` and ``cancel`` do it first by themselves).

        :raises StreamCancelled: if the stream was asked to stop.
        """
        self._writer.flush()

    def complete(self, data: Any = None) -> str:
        """End the stream as ``completed`` with ``data``; return the event id.

        :raises StreamCancelled: if it was asked to stop (nothing written).
        """
        self._flag.check()
        return self._finish(StreamState.COMPLETED, data)

    def fail(self, data: Any = None) -> str:
        """End the stream as ``failed`` with ``data``; return the event id.

        :raises StreamCancelled: if it was asked to stop (nothing written).
        """
        self._flag.check()
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
            self._writer.fenced()
            return ""

    def _finish(self, state: StreamState, data: Any) -> str:
        text = serialize(data, self._max_event_bytes)
        event_id = self._writer.end(state, text, request_json=_OWN_REQUEST)
        if self._on_end is not None:
            self._on_end(state)
        return event_id
