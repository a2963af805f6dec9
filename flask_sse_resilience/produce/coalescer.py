"""Token coalescing: a producer's sends held for a few milliseconds and
written together.

A model emits tokens tens to hundreds of times a second; written one by one,
each costs a script call, a pub/sub message and, in every worker, a wake-up
and a socket write per follower. With a window of ``coalesce_ms``, the sends
of one window go to Redis as one batch: one script call, one announcement,
one socket write per follower, while every send stays its own event with its
own id in the log and on the wire.

With the leading edge on (the default), a send that finds the stream quiet
(nothing held, no write in flight, the last write ended a window ago or
more) is written at once, in the producer's thread: a sparse stream (an
event every 100 ms, a status line now and then) waits for nothing. Only the
sends that follow a write closely (while it is in flight, or within a window
after it ended) are held: the first of them opens a window, and what the
window holds goes out together when it ends, so a token stream still writes
one batch per window.
Without the leading edge, every first send of a window waits for the window
to end. Held sends are written by a timer thread (a greenlet under gevent);
a full batch, and every terminal write, is flushed at once. A batch that
fails stays at the front of the queue and is retried whole by the next flush
(the write is idempotent), and its error is raised by the producer's next
call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: One event to write: its sequence number, type and JSON data.
Numbered = tuple[int, str, str]

#: Most sends written in one batch; a fuller batch is flushed at once.
MAX_BATCH = 256

#: Most bytes of data held before a flush.
MAX_BATCH_BYTES = 256 * 1024


class Coalescer:
    """Holds sends for up to ``window`` seconds, then hands them to ``write``
    together, in order, one batch at a time; with ``leading``, a send that
    finds the stream quiet is not held at all."""

    def __init__(
        self,
        window: float,
        write: Callable[[list[Numbered]], object],
        *,
        leading: bool = True,
    ) -> None:
        self.window = window
        self.leading = leading
        self._write = write
        #: True while a batch is being written.
        self._in_flight = False
        #: When the stream is quiet again: a window after the last write ended.
        self._quiet_from = 0.0
        self._held: list[Numbered] = []
        self._bytes = 0
        self._due: float | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._wakeup = threading.Condition()
        #: Taken for a whole flush, so batches are written one at a time, in order.
        self._writing = threading.Lock()
        self._timer: threading.Thread | None = None

    def add(self, item: Numbered) -> bool:
        """Hold one send; return True when it should be written now, in the
        caller's thread (the caller should :meth:`flush_full`): the batch is
        full, or the send leads (``leading``, and the stream was quiet).

        :raises: the error of a background flush that failed since the last
            call, before holding ``item`` (the batch it was writing is still
            held).
        """
        with self._wakeup:
            self._raise_error()
            if self._closed:
                raise RuntimeError("the producer has ended")
            now = time.monotonic()
            leads = (
                self.leading
                and not self._held
                and not self._in_flight
                and now >= self._quiet_from
            )
            self._held.append(item)
            self._bytes += len(item[2])
            if leads:
                return True
            if self._due is None:  # the first held send opens a window
                self._due = now + self.window
                self._start_timer()
                self._wakeup.notify()
            full = len(self._held) >= MAX_BATCH or self._bytes >= MAX_BATCH_BYTES
            return full

    def flush(self, *, earlier_errors: bool = True) -> None:
        """Write every held send now, in this thread.

        :raises: the error of an earlier background flush (unless not
            ``earlier_errors``: forgotten), or of this one (what could not be
            written stays held for the next flush).
        """
        with self._wakeup:
            if earlier_errors:
                self._raise_error()
            self._error = None
        self._flush()

    def flush_full(self) -> None:
        """Write what is held now, in this thread (a full batch, or a send
        that leads); an error is kept for the next call, as a background
        write's is (the send that asked for the write was taken)."""
        try:
            self._flush()
        except Exception as exc:  # noqa: BLE001 - raised by the next call
            with self._wakeup:
                self._error = exc

    def discard(self) -> list[Numbered]:
        """Drop what is held (the stream is ending without it); return it."""
        with self._writing, self._wakeup:
            held, self._held, self._bytes, self._due = self._held, [], 0, None
            self._error = None
            return held

    def close(self) -> None:
        """Stop the timer; what is still held is not written."""
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()
        timer = self._timer
        if timer is not None and timer is not threading.current_thread():
            timer.join(timeout=5)

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _flush(self) -> None:
        with self._writing:
            with self._wakeup:
                batch, self._held, self._bytes, self._due = self._held, [], 0, None
                if not batch:
                    return
                self._in_flight = True
            try:
                self._write(batch)
            except BaseException:
                with self._wakeup:  # keep it, in front, for the next flush
                    self._held[:0] = batch
                    self._bytes = sum(len(item[2]) for item in self._held)
                raise
            finally:
                with self._wakeup:
                    self._in_flight = False
                    self._quiet_from = time.monotonic() + self.window

    def _start_timer(self) -> None:
        if self._timer is None:
            self._timer = threading.Thread(
                target=self._run, name="sse-coalesce", daemon=True
            )
            self._timer.start()

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._closed and self._due is None:
                    self._wakeup.wait()
                if self._closed:
                    return
                late = self._due - time.monotonic() if self._due else 0.0
                if late > 0:
                    self._wakeup.wait(late)
                    continue
            try:
                self._flush()
            except BaseException as exc:  # noqa: BLE001 - raised by the next call
                with self._wakeup:
                    self._error = exc
                    self._due = None  # retried by the producer's next flush
