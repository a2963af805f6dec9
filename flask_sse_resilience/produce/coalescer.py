"""Token coalescing: a producer's sends held for a few milliseconds and
written together.

A model emits tokens tens to hundreds of times a second; written one by one,
each costs a script call, a pub/sub message and, in every worker, a wake-up
and a socket write per follower. With a window of ``coalesce_ms``, the sends
of one window go to Redis as one batch: one script call, one announcement,
one socket write per follower, while every send stays its own event with its
own id in the log and on the wire.

The first send of a window is written at the latest when the window ends
(by a timer thread, a greenlet under gevent); a full batch, and every
terminal write, is flushed at once. A batch that fails stays at the
front of the queue and is retried whole by the next flush (the write is
idempotent), and its error is raised by the producer's next call.
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
    together, in order, one batch at a time."""

    def __init__(
        self, window: float, write: Callable[[list[Numbered]], object]
    ) -> None:
        self.window = window
        self._write = write
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
        """Hold one send; return True when the batch is full (the caller
        should :meth:`flush_full` it now).

        :raises: the error of a background flush that failed since the last
            call, before holding ``item`` (the batch it was writing is still
            held).
        """
        with self._wakeup:
            self._raise_error()
            if self._closed:
                raise RuntimeError("the producer has ended")
            self._held.append(item)
            self._bytes += len(item[2])
            if self._due is None:
                self._due = time.monotonic() + self.window
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
        """Write a full batch now, in this thread; an error is kept for the
        next call, as a background write's is (the send that filled the batch
        was taken)."""
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
            try:
                self._write(batch)
            except BaseException:
                with self._wakeup:  # keep it, in front, for the next flush
                    self._held[:0] = batch
                    self._bytes = sum(len(item[2]) for item in self._held)
                raise

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
