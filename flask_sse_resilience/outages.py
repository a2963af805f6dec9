"""One log line per Redis outage in a process, and one when Redis is back.

Without it an outage shows as a 503 access line per request and a warning
per background tick, none saying which Redis or why. Every place that meets
Redis unavailable (the 503 answer and ``store_errors``, the background loops,
the guardian, the pub/sub links, a stream response ending early) reports it
to its client's :class:`Outages`. The first report of an outage logs one
warning naming the target (password masked), the cause and the fix (see
:func:`~flask_sse_resilience.redistarget.explain`); later ones log at debug
level only. A probe then pings Redis every :data:`PROBE_INTERVAL` seconds
(nothing runs while Redis is fine) and, once it answers, logs one line and
ends the outage, so the next one is reported again.

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
from collections.abc import Callable

from .loops import Periodic
from .redistarget import Target, describe_client, explain
from .redisutil import RedisClient

log = logging.getLogger(__name__)

#: Seconds between pings while Redis is out.
PROBE_INTERVAL = 1.0


class Outages:
    """The outages of one Redis target, as this process sees them.

    :param target: what the lines name.
    :param ping: a call that raises while Redis cannot serve (the probe).
    """

    def __init__(self, target: Target, ping: Callable[[], object]) -> None:
        self.target = target
        self._ping = ping
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._since: float | None = None
        self._probe: Periodic | None = None
        #: Outages reported by this process so far.
        self.count = 0

    @property
    def down(self) -> bool:
        """True between an outage's first report and the probe's success."""
        with self._lock:
            self._forked()
            return self._since is not None

    def failed(self, exc: BaseException) -> bool:
        """Note that Redis failed with ``exc``; log the outage's one line if
        this starts it (and return True), else log at debug level only."""
        with self._lock:
            self._forked()
            if self._since is not None:
                log.debug("Redis still unavailable: %s", exc)
                return False
            self._since = time.monotonic()
            self.count += 1
            self._probe = Periodic("outage-probe", self._check, PROBE_INTERVAL)
        log.warning("%s (requests get 503 until it is back)", explain(exc, self.target))
        self._probe.ensure()
        return True

    def recovered(self) -> None:
        """End the outage, if there is one: log how long it lasted."""
        with self._lock:
            self._forked()
            since, probe = self._since, self._probe
            self._since = self._probe = None
        if since is None:
            return
        if probe is not None:
            probe.stop()
        log.warning(
            "Redis at %s is back after %.1f s", self.target, time.monotonic() - since
        )

    def close(self) -> None:
        """Stop the probe (the process is done with this Redis)."""
        with self._lock:
            probe, self._probe = self._probe, None
        if probe is not None:
            probe.stop()

    def _check(self) -> None:
        try:
            self._ping()
        except Exception:  # noqa: BLE001 - still out, whatever the cause
            return
        self.recovered()

    def _forked(self) -> None:
        """Forget an outage (and its probe) inherited from a parent process."""
        if self._pid != os.getpid():
            self._pid, self._since, self._probe = os.getpid(), None, None


#: The outage log of each client, as its app registered it.
_BY_CLIENT: weakref.WeakKeyDictionary[object, Outages] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def watch(client: RedisClient, outages: Outages) -> None:
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
            found = _BY_CLIENT[client] = Outages(target, client.ping)
        return found
