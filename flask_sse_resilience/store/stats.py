"""Operational counters for the dashboard, kept without touching the client path.

Each process counts what it does in memory (events sent, client connects,
streams ended by state) and, once per heartbeat interval, adds its counts to a
per-minute hash in Redis and records how many clients it serves, in one
pipeline. A client request never waits on Redis for this; the dashboard reads
the last fifteen minutes back.

Keys (all tagged ``{stats}``): ``<prefix>{stats}:m:<unix minute>`` (hash of
counts, kept 16 minutes) and ``<prefix>{stats}:workers`` (hash of
``host:pid`` -> JSON ``{"clients": n, "at": ms}``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from .. import signals
from ..ids import worker_name
from ..redisio import outages
from ..redisio.commands import RedisClient, hash_to_text, run_pipeline
from ..redisio.failures import UNAVAILABLE
from ..redisio.loops import Periodic
from .keys import Keys

log = logging.getLogger(__name__)

#: Names counted per minute (``oom``: writes Redis refused because it was
#: full, as the outage log heard of them).
COUNTS = ("events", "connects", "completed", "failed", "orphaned", "cancelled", "oom")

#: Minutes of history kept (and shown).
HISTORY = 15


class Stats:
    """This process's counters; see the module docstring."""

    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        *,
        interval: float,
        clients: Callable[[], int],
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.interval = interval
        self.clients = clients
        self.pid = os.getpid()
        self.worker = worker_name()
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.loop = Periodic(
            "stats", self.flush, interval, report=outages.of(redis).failed
        )

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` (one of :data:`COUNTS`); no I/O."""
        with self._lock:
            self._counts[name] += n
        self.loop.ensure()

    def start(self) -> None:
        """Flush every interval from now on, in a background loop."""
        self.loop.ensure()

    def stop(self) -> None:
        """Flush once more (if Redis can be reached) and stop."""
        self.loop.stop(timeout=self.interval + 1)
        try:
            self.flush()
        except UNAVAILABLE:
            log.warning("dashboard counters of %s not flushed", self.worker)

    def flush(self) -> None:
        """Add this process's counts to the current minute and record its
        client count, in one round trip. If that fails, the counts are kept
        for the next flush and the error propagates."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        seconds = time.time()
        minute = int(seconds // 60)
        now_ms = int(seconds * 1000)
        bucket = self.keys.stats_minute(minute)

        def write(pipe: Any) -> None:
            for name, n in counts.items():
                pipe.hincrby(bucket, name, n)
            if counts:
                pipe.expire(bucket, (HISTORY + 1) * 60)
            pipe.hset(
                self.keys.stats_workers,
                self.worker,
                json.dumps({"clients": self.clients(), "at": now_ms}),
            )
            pipe.expire(self.keys.stats_workers, int(self.interval * 3) + 60)

        try:
            run_pipeline(self.redis, write)
        except BaseException:
            with self._lock:
                self._counts.update(counts)
            raise


def queue_history(pipe: Any, keys: Keys, span: range) -> None:
    """Queue reading the counts of the minutes in ``span`` (unix minutes) and
    the workers' reports on ``pipe``; read the replies with
    :func:`parse_history`."""
    pipe.hgetall(keys.stats_workers)
    for minute in span:
        pipe.hgetall(keys.stats_minute(minute))


def parse_history(
    span: range, replies: list[Any]
) -> tuple[dict[str, dict[str, int]], list[dict[str, int]]]:
    """The replies of :func:`queue_history` as ``(workers, minutes)``:
    each worker's last report (``{"clients", "at"}``, by ``host:pid``), and
    per minute of ``span``, oldest first, ``{"minute", <count>: n, ...}``
    for every name of :data:`COUNTS`."""
    workers = {
        name: {k: int(v) for k, v in json.loads(report).items()}
        for name, report in hash_to_text(replies[0]).items()
    }
    minutes = []
    for minute, raw in zip(span, replies[1:], strict=True):
        counts = {name: int(v) for name, v in hash_to_text(raw).items()}
        minutes.append({"minute": minute, **{n: counts.get(n, 0) for n in COUNTS}})
    return workers, minutes


def count_signals(app: Any, stats: Callable[[], Stats]) -> None:
    """Make ``app``'s signals feed the counters of ``stats()`` (this process's
    :class:`Stats`): the dashboard is one receiver of the signals, like the
    metrics and any app's own."""

    def counter(name: str) -> Callable[..., None]:
        def receive(_app: Any, **_: Any) -> None:
            stats().count(name)

        return receive

    def connected(_app: Any, live: bool = True, **_: Any) -> None:
        if live:
            stats().count("connects")

    for signal, receiver in (
        (signals.event_sent, counter("events")),
        (signals.stream_completed, counter("completed")),
        (signals.stream_failed, counter("failed")),
        (signals.stream_orphaned, counter("orphaned")),
        (signals.stream_cancelled, counter("cancelled")),
        (signals.client_connected, connected),
    ):
        signal.connect(receiver, sender=app, weak=False)
