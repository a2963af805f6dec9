"""One log line per Redis outage in a process, and one when Redis is back.

Without it an outage shows as a 503 access line per request and a warning
per background tick, none saying which Redis or why. Every place that meets
Redis unavailable (the 503 answer and ``store_errors``, the background loops,
the guardian, the pub/sub links, a stream response ending early) reports it
to its client's :class:`Outages`. The first report of an outage logs one
warning naming the target (password masked), the cause and the fix (see
:func:`~flask_sse_resilience.redisio.target.explain`); later ones log at debug
level only. A probe then pings Redis every :data:`PROBE_INTERVAL` seconds
(nothing runs while Redis is fine) and, once it answers, logs one line and
ends the outage, so the next one is reported again.

A full Redis (``OOM``: ``maxmemory`` reached under ``noeviction``) is an
episode of its own, since reads still work and a ping proves nothing: the
first refused write logs one warning naming the limit and the policy (read
with ``INFO memory``, see :mod:`~flask_sse_resilience.redisio.memory`) and what to
do; its end is logged once no write was refused for :data:`FULL_QUIET`
seconds and ``INFO`` no longer shows memory over ``maxmemory``. So a Redis
that hovers at its limit, refusing some writes and taking others, stays one
episode instead of a pair of lines per refusal. Each refused write is also
counted (:attr:`Outages.refused`) and told to the listeners added with
:meth:`Outages.on_refused` (the Prometheus counter, the dashboard's).

Both lines are warnings: with Python's default logging (no handler set up,
as in a plain gunicorn run) only warnings and errors are shown, and a reader
who saw the outage should see its end.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence

from . import memory
from .commands import RedisClient
from .failures import UNAVAILABLE, is_out_of_memory
from .loops import Periodic
from .memory import NodeMemory
from .target import Target, describe_client, explain

log = logging.getLogger(__name__)

#: Seconds between pings while Redis is out (and looks at its memory
#: while it is full).
PROBE_INTERVAL = 1.0

#: Seconds without a refused write, and with memory below ``maxmemory``,
#: that end an out-of-memory episode.
FULL_QUIET = 3.0

#: Reads the memory of the Redis an :class:`Outages` reports on.
ReadMemory = Callable[[], Sequence[NodeMemory]]


class _Episode:
    """One kind of episode (an outage, Redis full): when the one on began
    and the probe that ends it. Its :class:`Outages`'s lock guards it."""

    def __init__(self, name: str, check: Callable[[], None]) -> None:
        self._name = name
        self._check = check
        self.since: float | None = None
        self.probe: Periodic | None = None
        #: Episodes begun so far.
        self.count = 0

    def begin(self, now: float) -> Periodic | None:
        """Begin an episode unless one is on; return its probe, for the
        caller to start (None: one was on)."""
        if self.since is not None:
            return None
        self.since = now
        self.count += 1
        self.probe = Periodic(self._name, self._check, PROBE_INTERVAL)
        return self.probe

    def end(self) -> tuple[float, Periodic | None] | None:
        """End the episode on: its start and its probe, for the caller to stop
        (None: none was on)."""
        since, probe = self.since, self.probe
        self.forget()
        return None if since is None else (since, probe)

    def forget(self) -> None:
        """Drop the episode on, if any, and its probe (not stopped)."""
        self.since = self.probe = None


def _lasted(ended: tuple[float, Periodic | None]) -> float:
    """Stop an ended episode's probe; return how long the episode lasted."""
    since, probe = ended
    if probe is not None:
        probe.stop()
    return time.monotonic() - since


class Outages:
    """The outages of one Redis target, as this process sees them.

    :param target: what the lines name.
    :param ping: a call that raises while Redis cannot serve (the probe).
    :param read_memory: reads the target's memory (the probe while it is
        full), or None to judge by refused writes alone.
    """

    def __init__(
        self,
        target: Target,
        ping: Callable[[], object],
        read_memory: ReadMemory | None = None,
    ) -> None:
        self.target = target
        self._ping = ping
        self._memory = read_memory
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._outage = _Episode("outage-probe", self._check)
        self._full = _Episode("memory-probe", self._check_memory)
        self._last_refused = 0.0
        self._refused_since = 0
        self._listeners: list[Callable[[], object]] = []
        #: Writes this process reported refused for memory, in all.
        self.refused = 0

    @property
    def count(self) -> int:
        """Outages reported by this process so far."""
        return self._outage.count

    @property
    def full_count(self) -> int:
        """Out-of-memory episodes reported by this process so far."""
        return self._full.count

    @property
    def down(self) -> bool:
        """True between an outage's first report and the probe's success."""
        with self._lock:
            self._forked()
            return self._outage.since is not None

    @property
    def full(self) -> bool:
        """True between the first write refused for memory and the end of
        that episode."""
        with self._lock:
            self._forked()
            return self._full.since is not None

    def on_refused(self, listener: Callable[[], object]) -> None:
        """Call ``listener()`` for each write refused for memory that is
        reported from now on (in this process)."""
        with self._lock:
            self._listeners.append(listener)

    def failed(self, exc: BaseException) -> bool:
        """Note that Redis failed with ``exc``; log the outage's one line if
        this starts it (and return True), else log at debug level only. A
        write refused for memory counts toward an out-of-memory episode
        instead (see the module docstring)."""
        if is_out_of_memory(exc):
            return self._refused_write(exc)
        with self._lock:
            self._forked()
            probe = self._outage.begin(time.monotonic())
        if probe is None:
            log.debug("Redis still unavailable: %s", exc)
            return False
        log.warning("%s (requests get 503 until it is back)", explain(exc, self.target))
        probe.ensure()
        return True

    def recovered(self) -> None:
        """End the outage, if there is one: log how long it lasted."""
        with self._lock:
            self._forked()
            ended = self._outage.end()
        if ended is not None:
            lasted = _lasted(ended)
            log.warning("Redis at %s is back after %.1f s", self.target, lasted)

    def close(self) -> None:
        """Stop the probes (the process is done with this Redis)."""
        with self._lock:
            probes = (self._outage.probe, self._full.probe)
            self._outage.probe = self._full.probe = None
        for probe in probes:
            if probe is not None:
                probe.stop()

    def _check(self) -> None:
        try:
            self._ping()
        except Exception:  # noqa: BLE001 - still out, whatever the cause
            return
        self.recovered()

    def _refused_write(self, exc: BaseException) -> bool:
        now = time.monotonic()
        with self._lock:
            self._forked()
            self.refused += 1
            self._last_refused = now
            listeners = list(self._listeners)
            probe = self._full.begin(now)
            starts = probe is not None
            if starts:
                self._refused_since = 0
            self._refused_since += 1
        for listener in listeners:
            try:
                listener()
            except Exception:  # noqa: BLE001 - a counter must not break a request
                log.debug("a listener of refused writes failed", exc_info=True)
        if not starts:
            log.debug("Redis still refuses writes: %s", exc)
            return False
        log.warning("%s", self._full_line(exc))
        if probe is not None:
            probe.ensure()
        return True

    def _full_line(self, exc: BaseException) -> str:
        try:
            nodes = self._memory() if self._memory is not None else None
        except Exception:  # noqa: BLE001 - INFO refused or Redis gone: say less
            nodes = None
        limit = memory.describe(nodes) if nodes else f"{type(exc).__name__}: {exc}"
        return (
            f"Redis at {self.target} is out of memory ({limit}): free memory or "
            "raise maxmemory. Until then it refuses writes: opening a stream "
            "answers 503 redis_out_of_memory, producers' sends fail, and the "
            "streams they could not end are ended by the guardian once Redis "
            "takes writes again"
        )

    def _check_memory(self) -> None:
        """The probe of an out-of-memory episode: end it once no write was
        refused for :data:`FULL_QUIET` seconds and memory is below
        ``maxmemory`` (or ``INFO`` is refused); not while Redis is away."""
        with self._lock:
            if time.monotonic() - self._last_refused < FULL_QUIET:
                return
        try:
            nodes = self._memory() if self._memory is not None else []
        except UNAVAILABLE:
            return  # Redis is away (an outage, with its own line): wait for it
        except Exception:  # noqa: BLE001 - INFO refused: judged by refusals alone
            nodes = []
        if any(node.full for node in nodes):
            return
        with self._lock:
            ended, refused = self._full.end(), self._refused_since
        if ended is not None:
            log.warning(
                "Redis at %s takes writes again after %.1f s (%d refused here)",
                self.target, _lasted(ended), refused,
            )  # fmt: skip

    def _forked(self) -> None:
        """Forget the episodes (and their probes) inherited from a parent
        process."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._outage.forget()
            self._full.forget()


#: The outage log of each client, as its app registered it.
_BY_CLIENT: weakref.WeakKeyDictionary[object, Outages] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def report_to(client: RedisClient, outages: Outages) -> None:
    """Report ``client``'s failures to ``outages`` (the clients of one app
    share one, so an outage is one line whichever part met it first)."""
    with _LOCK:
        _BY_CLIENT[client] = outages


def of(client: RedisClient) -> Outages:
    """The outage log of ``client``: its app's, or one describing the client
    itself if no app registered it (a store used on its own)."""
    with _LOCK:
        found = _BY_CLIENT.get(client)
        if found is None:
            target = Target(describe_client(client), "client")
            found = _BY_CLIENT[client] = Outages(
                target, client.ping, lambda: memory.read(client)
            )
        return found
