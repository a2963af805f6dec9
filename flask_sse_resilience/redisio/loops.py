"""Background loops that never die, and clean-up writes that always land.

Every periodic job of a process (heartbeats, lease renewal, the dashboard's
counters) is a :class:`Periodic`: a daemon thread (a greenlet under gevent)
started on first use in the process that uses it, never in a parent it was
forked from. A job that raises is logged and retried after a short, jittered
backoff, whatever the exception; Redis being unavailable is reported to the
loop's ``report`` (the app's outage log, one line per outage: see
:mod:`~flask_sse_resilience.redisio.outages`), or else a warning; anything else is a
logged traceback.

A loop whose thread ends anyway (a ``BaseException`` such as a killed
greenlet) is restarted: every loop, on each run, revives every other loop of
the process that should be running, and so does the guardian's scheduled job
and every stream request (:func:`revive_all`). Other parts with a thread of
their own (the pub/sub links, the guardian's scheduler) register with
:func:`supervise`.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from .commands import RedisClient, run_pipeline
from .failures import UNAVAILABLE

#: Queues commands on a pipeline: ``build(pipe)`` (as
#: :func:`~flask_sse_resilience.redisio.commands.run_pipeline` runs them).
#: Defined once, here, for every part that passes such a function around.
Build = Callable[[Any], None]

log = logging.getLogger(__name__)

#: Jitter comes from a generator of our own: background threads must not move
#: the application's global ``random`` state.
_jitter = random.Random()


class Revivable(Protocol):
    """A part with a thread of its own that :func:`revive_all` looks after."""

    def revive(self) -> None:
        """Restart the part's thread if it should run and does not; cheap
        when all is well."""


#: Every supervised part, weakly held: a part nobody uses is let go.
_PARTS: weakref.WeakSet[Revivable] = weakref.WeakSet()
_PARTS_LOCK = threading.Lock()


def gevent_patched(module: str = "threading") -> bool:
    """Whether gevent has monkey-patched ``module`` in this process (as a
    gunicorn gevent worker does): then a thread is a greenlet, and sockets
    cooperate with the hub."""
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return bool(monkey.is_module_patched(module))


def supervise(part: Revivable) -> None:
    """Have :func:`revive_all` look after ``part`` while it exists."""
    with _PARTS_LOCK:
        _PARTS.add(part)


def revive_all() -> None:
    """Restart every supervised part of this process whose thread ended."""
    with _PARTS_LOCK:
        parts = list(_PARTS)
    for part in parts:
        try:
            part.revive()
        except Exception:  # noqa: BLE001 - one broken part must not stop the rest
            log.exception("could not revive a background loop")


class Periodic:
    """Runs ``job()`` every ``interval`` seconds in this process, for good.

    :param name: the thread's name (shown in logs and ``py-spy``).
    :param retry: seconds before the first retry after a failure; doubled
        (with jitter) on each further failure, up to ``max_retry`` (by
        default ``interval``).
    :param report: called with each "Redis unavailable" error instead of
        logging a warning per failure.
    """

    def __init__(
        self,
        name: str,
        job: Callable[[], object],
        interval: float,
        *,
        retry: float = 1.0,
        max_retry: float | None = None,
        report: Callable[[Exception], object] | None = None,
    ) -> None:
        self.name = name
        self.job = job
        self.report = report
        self.interval = interval
        self.max_retry = min(interval, max_retry or interval)
        self.retry = min(retry, self.max_retry)
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._started = False
        self._thread: threading.Thread | None = None
        #: Runs that succeeded, failed, and times the thread was restarted.
        self.runs = 0
        self.failures = 0
        self.restarts = 0
        supervise(self)

    @property
    def alive(self) -> bool:
        """True while the loop's thread runs in this process."""
        thread = self._thread
        return thread is not None and thread.is_alive() and self.pid == os.getpid()

    def ensure(self) -> None:
        """Start the loop if it is not running (and was not stopped)."""
        with self._lock:
            if self.pid != os.getpid():  # forked: the parent's thread is not ours
                self._started, self._thread = False, None
            if self._stopped or self.alive:
                return
            if self._started:
                self.restarts += 1
                log.warning("background loop %s had ended; restarting it", self.name)
            self.pid = os.getpid()
            self._started = True
            self._thread = threading.Thread(
                target=self._run, name=f"sse-resilience-{self.name}", daemon=True
            )
            self._thread.start()

    def revive(self) -> None:
        """Restart the loop if it was started in this process and its
        thread ended (see :func:`revive_all`)."""
        if self._started and self.pid == os.getpid():
            self.ensure()

    def stop(self, timeout: float = 0.0) -> None:
        """Stop the loop (for good); wait up to ``timeout`` for its thread."""
        with self._lock:
            self._stopped = True
            thread = self._thread
        self._wake.set()
        if thread is not None and timeout > 0 and self.pid == os.getpid():
            thread.join(timeout)

    def _run(self) -> None:
        wait = self.interval
        while True:
            self._wake.wait(wait)
            self._wake.clear()
            if self._stopped:
                return
            try:
                self.job()
            except Exception as exc:  # noqa: BLE001 - the loop must survive
                self.failures += 1
                wait = self._backoff(wait)
                if isinstance(exc, UNAVAILABLE):
                    if self.report is not None:
                        self.report(exc)
                    level = logging.DEBUG if self.report else logging.WARNING
                    log.log(level, "%s failed, Redis unavailable (%s); retrying "
                            "in %.1fs", self.name, exc, wait)  # fmt: skip
                else:
                    log.exception("%s failed; retrying in %.1fs", self.name, wait)
            else:
                self.runs += 1
                wait = self.interval
            revive_all()

    def _backoff(self, previous: float) -> float:
        base = self.retry if previous >= self.interval else previous * 2
        base = min(base, self.max_retry)
        return _jitter.uniform(base / 2, base)


class Deferred:
    """Idempotent clean-up writes that must land eventually (giving back a
    lease, uncounting an ended stream): run at once, and if Redis is
    unavailable kept and retried every ``interval`` seconds, all pending
    ones in one pipeline, until they land. So counts are exact again once
    Redis is back, instead of waiting for their keys to expire. A write still
    pending after ``max_age`` seconds is dropped: every key it would clean
    has expired by then. ``report`` is as for :class:`Periodic`."""

    def __init__(
        self,
        client: RedisClient,
        *,
        interval: float = 1.0,
        max_age: float = 3600,
        report: Callable[[Exception], object] | None = None,
    ) -> None:
        self.client = client
        self.max_age = max_age
        self.report = report
        self._pending: list[tuple[float, Build]] = []
        self._lock = threading.Lock()
        self.loop = Periodic(
            "cleanup", self.flush, interval, retry=interval, report=report
        )

    @property
    def pending(self) -> int:
        """Writes waiting for Redis to come back."""
        with self._lock:
            return len(self._pending)

    def run(self, build: Build, via: Callable[[Build], object] | None = None) -> None:
        """Queue commands with ``build(pipe)`` and run them now (through
        ``via`` if given, else in a pipeline of their own); if Redis is
        unavailable, retry them later instead of raising."""
        try:
            if via is None:
                run_pipeline(self.client, build)
            else:
                via(build)
        except UNAVAILABLE as exc:
            if self.report is not None:
                self.report(exc)
            level = logging.DEBUG if self.report else logging.WARNING
            log.log(level, "clean-up write deferred until Redis is back: %s", exc)
            with self._lock:
                self._pending.append((time.monotonic(), build))
            self.loop.ensure()

    def flush(self) -> None:
        """Run every pending write now, in one round trip; on failure they
        stay pending and the error propagates."""
        with self._lock:
            pending, self._pending = self._pending, []
        oldest = time.monotonic() - self.max_age
        builds = [build for since, build in pending if since > oldest]
        if len(builds) < len(pending):
            log.warning("dropped %d clean-up writes pending for over %ss",
                        len(pending) - len(builds), self.max_age)  # fmt: skip
        if not builds:
            return

        def everything(pipe: Any) -> None:
            for build in builds:
                build(pipe)

        try:
            run_pipeline(self.client, everything)
        except UNAVAILABLE:
            with self._lock:
                self._pending[:0] = [p for p in pending if p[0] > oldest]
            raise
        except Exception:  # noqa: BLE001 - not an outage: retrying cannot help
            log.exception("dropping %d clean-up writes", len(builds))
            return
        log.info("%d deferred clean-up writes landed", len(builds))
