"""Per-app state: the settings and the Redis-backed parts wired together.

Kept in ``app.extensions["sse_resilience"]`` (:data:`EXTENSION_KEY`) and
found with :func:`get_state`, by the extension, its views, its CLI and the
gunicorn hooks alike. The background parts (the pub/sub
broker, the heartbeat thread, the guardian's scheduler) are created on first
use in the process that uses them, so nothing started before gunicorn forks
(``--preload``) is shared with a worker, and nothing runs in the master.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from blinker import NamedSignal

from . import signals
from .errors import ConfigurationError
from .models import StreamMetadata, StreamState
from .produce.heartbeat import Heartbeater
from .redisio import health, memory, outages
from .redisio.commands import RedisClient
from .redisio.loops import Deferred, revive_all
from .redisio.outages import Outages
from .redisio.sharedpipe import SharedPipeline
from .redisio.target import Target, describe_client
from .serve.admission import Connections
from .serve.broker import Broker
from .serve.presence import PresenceCheck
from .serve.timeline import Notice
from .settings import Settings, check_compression, prefixed, warn_late_keys
from .store.completion import CompletionStore
from .store.control import StreamControl
from .store.eventlog import EventLog
from .store.guardian import StreamGuardian
from .store.keys import Keys
from .store.leases import ConnectionLeases, lease_ms
from .store.registry import StreamRegistry
from .store.stats import Stats

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

IdentityLoader = Callable[[], Any]
P = TypeVar("P")
Authorizer = Callable[[StreamMetadata, str], bool]

#: Where an app keeps its :class:`State`: ``app.extensions[EXTENSION_KEY]``.
EXTENSION_KEY = "sse_resilience"


@dataclasses.dataclass
class Hooks:
    """The app's answers to three questions, set with the extension's
    decorators (or constructor) and read at request time."""

    #: Who is asking: returns the current user's id, or None (401).
    identity: IdentityLoader | None = None
    #: Who may follow and recover a stream; None: only its owner.
    authorizer: Authorizer | None = None
    #: Whether the current user may see the dashboard; None: nobody.
    dashboard_auth: Callable[[], bool] | None = None


def find_state(app: Any) -> State | None:
    """The :class:`State` of ``app`` (any object with Flask's
    ``extensions``), or None if it has none."""
    extensions = getattr(app, "extensions", None)
    state = extensions.get(EXTENSION_KEY) if isinstance(extensions, dict) else None
    return state if isinstance(state, State) else None


def get_state(app: Flask | None = None) -> State:
    """The :class:`State` of ``app`` (default: the current app).

    :raises RuntimeError: if the app was not set up with ``init_app``.
    """
    if app is None:
        from flask import current_app

        app = current_app._get_current_object()  # type: ignore[attr-defined]
    state = find_state(app)
    if state is None:
        raise RuntimeError(
            "this app is not registered with SSEResilience; did you forget init_app?"
        )
    return state


class State:
    """Everything one app needs to serve and produce streams."""

    def __init__(
        self,
        app: Flask,
        settings: Settings,
        redis: RedisClient,
        hooks: Hooks,
        liveness_client: Callable[[], RedisClient] | None = None,
        target: Target | None = None,
        adopt: Callable[[State], object] | None = None,
    ) -> None:
        self._app = weakref.ref(app)
        #: Attaches this state to the server process it runs in (the
        #: extension passes :func:`flask_sse_resilience.gunicorn.adopt`).
        self._adopt = adopt
        self.settings = settings
        self.redis = redis
        #: Which Redis this app uses, and the setting that chose it.
        self.target = target or Target(describe_client(redis), "client")
        #: This process's outages of that Redis: one log line each.
        self.outages = Outages(
            self.target,
            lambda: self.liveness_redis.ping(),
            lambda: memory.read(self.liveness_redis),
        )
        outages.report_to(redis, self.outages)
        self._make_liveness = liveness_client
        self._liveness: RedisClient | None = None
        # Its own lock: parts made under ``_lock`` ask for this client.
        self._liveness_lock = threading.Lock()
        #: The ``SSE_RESILIENCE_*`` config as ``init_app`` read it.
        self.config_at_init = prefixed(app.config)
        self.keys = Keys(settings.key_prefix, settings.shards)
        self.stream_id_rule = re.compile(settings.stream_id_pattern)
        self.hooks = hooks
        #: Clean-up writes retried until they land (counts stay exact).
        self.deferred = Deferred(redis, report=self.outages.failed)
        self.registry = StreamRegistry(
            redis,
            self.keys,
            stream_ttl=settings.stream_ttl,
            completion_ttl=settings.completion_ttl,
            max_streams_per_user=settings.max_streams_per_user,
            deferred=self.deferred,
        )
        self.completions = CompletionStore(
            redis, self.keys, ttl=settings.completion_ttl
        )
        self.log = self._event_log(redis)
        #: Cancel requests and abandon checks.
        self.control = self._control(self.log)
        # Reentrant: a part made under it may ask for another (connections).
        self._lock = threading.RLock()
        #: Set by :meth:`close`: the scrape-time gauges skip this app.
        self.closed = False
        self._broker: Broker | None = None
        self._heartbeater: Heartbeater | None = None
        self._guardian: StreamGuardian | None = None
        self._leases: ConnectionLeases | None = None
        self._shared: SharedPipeline | None = None
        self._connections: Connections | None = None
        self._stats: Stats | None = None
        #: True once :meth:`shutdown` ran in this process.
        self.shutting_down = False
        #: The process that looked for a gunicorn worker to attach to.
        self._adopted_by = 0

    def _event_log(self, redis: RedisClient) -> EventLog:
        return EventLog(
            redis,
            self.keys,
            max_events=self.settings.max_events,
            completion_ttl=self.settings.completion_ttl,
            deferred=self.deferred,
            cancel_grace=self.settings.fence_after,
        )

    def _control(self, log: EventLog) -> StreamControl:
        return StreamControl(
            log.redis,
            self.keys,
            log,
            stale_threshold=self.settings.stale_threshold,
            lease_ms=lease_ms(self.settings.heartbeat_interval),
        )

    @property
    def app(self) -> Flask:
        """The app this state belongs to."""
        app = self._app()
        if app is None:  # pragma: no cover - the app owns its state
            raise RuntimeError("the app of this SSEResilience state is gone")
        return app

    def may_follow(self, record: StreamMetadata, user_id: str) -> bool:
        """Whether ``user_id`` may follow or recover the stream ``record``:
        the app's authorizer decides if it set one, else only the owner may."""
        authorizer = self.hooks.authorizer
        if authorizer is None:
            return record.user_id == user_id
        return bool(authorizer(record, user_id))

    def emit(self, signal: NamedSignal, **data: Any) -> None:
        """Send ``signal`` with the app as sender; a failing receiver is logged."""
        app = self._app()
        if app is None or not signal.receivers:
            return
        try:
            signal.send(app, **data)
        except Exception:  # noqa: BLE001 - an app's hook must not break streams
            log.exception("a receiver of %s failed", signal.name)

    def _local(self, attr: str, make: Callable[[], P]) -> P:
        """The part stored in ``attr`` if this process made it, else a new one
        (a part inherited across a fork belongs to the parent)."""
        with self._lock:
            part = getattr(self, attr)
            if part is None or part.pid != os.getpid():
                part = make()
                setattr(self, attr, part)
            return cast(P, part)

    @property
    def broker(self) -> Broker:
        """This process's pub/sub broker, created on first use (it checks
        the records of the streams it follows every heartbeat interval)."""
        return self._local("_broker", self._make_broker)

    def _make_broker(self) -> Broker:
        every = self.settings.heartbeat_interval
        check = PresenceCheck(self.registry, self.log, self.completions, interval=every)
        return Broker(
            self.redis, self.keys, buffer=self.settings.live_buffer, presence=check
        )

    @property
    def shared(self) -> SharedPipeline:
        """This process's shared round trips for request pipelines."""
        return self._local("_shared", lambda: SharedPipeline(self.redis))

    @property
    def connections(self) -> Connections:
        """This process's stream connections (admission, lease, close)."""
        return self._local(
            "_connections",
            lambda: Connections(
                self.registry, self.completions, self.leases, self.shared.run
            ),
        )

    @property
    def stats(self) -> Stats:
        """This process's dashboard counters, created on first use."""
        return self._local(
            "_stats",
            lambda: Stats(
                self.redis,
                self.keys,
                interval=self.settings.heartbeat_interval,
                clients=lambda: self._broker.followers if self._broker else 0,
            ),
        )

    @property
    def liveness_redis(self) -> RedisClient:
        """The client of the writes that decide whether a stream lives
        (heartbeats, the guardian): a pool of its own when the app gave a
        URL, so that producers and requests retrying through an outage, which
        can hold every pooled connection, never delay a heartbeat into a false
        orphan. The app's own client when it passed one as ``redis=``."""
        if self._make_liveness is None:
            return self.redis
        with self._liveness_lock:
            if self._liveness is None:
                self._liveness = self._make_liveness()
                outages.report_to(self._liveness, self.outages)
            return self._liveness

    @property
    def heartbeater(self) -> Heartbeater:
        """This process's heartbeat thread, created on first use."""
        return self._local(
            "_heartbeater",
            lambda: Heartbeater(
                StreamRegistry(
                    self.liveness_redis, self.keys, stream_ttl=self.settings.stream_ttl
                ),
                self.settings.heartbeat_interval,
            ),
        )

    @property
    def leases(self) -> ConnectionLeases:
        """This process's connection leases, created on first use."""
        return self._local(
            "_leases",
            lambda: ConnectionLeases(
                self.redis,
                self.keys,
                limit=self.settings.max_connections_per_user,
                interval=self.settings.heartbeat_interval,
                deferred=self.deferred,
            ),
        )

    @property
    def guardian(self) -> StreamGuardian:
        """This process's guardian (not necessarily scheduled)."""
        return self._local(
            "_guardian",
            lambda: self._make_guardian(self._event_log(self.liveness_redis)),
        )

    def _make_guardian(self, log: EventLog) -> StreamGuardian:
        return StreamGuardian(
            self.liveness_redis,
            self.keys,
            log,
            self.settings,
            control=self._control(log),
            on_ended=self._ended,
            on_swept=lambda result: self.emit(signals.guardian_swept, result=result),
        )

    def _ended(self, stream_id: str, state: StreamState) -> None:
        """A stream the guardian ended (orphaned, or fenced after a cancel)."""
        self.emit(signals.ended_signal(state), stream_id=stream_id)

    def start_background(self) -> None:
        """Schedule the guardian in this process, if enabled, and report to
        the dashboard (if on) from now on; restart any background loop whose
        thread ended; under gunicorn, attach to this worker (see
        :mod:`~flask_sse_resilience.gunicorn`); once per process, warn if
        Redis may evict streams (see
        :func:`~flask_sse_resilience.redisio.health.warn_if_evicting`).
        Idempotent and cheap: it runs before every request."""
        if self._adopted_by != os.getpid():
            self._adopted_by = os.getpid()
            if self._adopt is not None:
                self._adopt(self)
            try:  # Flask-Compress set up after init_app: its config is final now
                check_compression(self.app.config)
            except ConfigurationError as exc:
                log.error("%s", exc)
            warn_late_keys(self.config_at_init, self.app.config)
            # Off the request: Redis may be slow or down at this moment.
            threading.Thread(
                target=health.warn_if_evicting,
                args=(self.redis, self.target),
                name="sse-resilience-eviction-check",
                daemon=True,
            ).start()
        revive_all()
        if self.settings.dashboard and not self.shutting_down:
            self.stats.start()
        if self.settings.guardian_enabled and not self.shutting_down:
            guardian = self.guardian
            if not guardian.running:
                guardian.start()

    def shutdown(self, grace: float = 0.0) -> int:
        """Prepare this process to exit: stop the guardian, end every open
        stream response with a reconnect hint, then wait up to ``grace``
        seconds for this process's producers to finish.

        Returns the number of stream responses ended.
        """
        self.shutting_down = True
        with self._lock:
            guardian, heartbeater = self._guardian, self._heartbeater
        pid = os.getpid()
        if guardian is not None and guardian.pid == pid:
            guardian.stop()
        # Made here if need be: a response admitted just before the stop
        # finds its broker closing, and is sent on at once.
        ended = self.broker.close_all(Notice.RECONNECT)
        if heartbeater is not None and heartbeater.pid == pid:
            deadline = time.monotonic() + grace
            while heartbeater.streams and time.monotonic() < deadline:
                time.sleep(0.1)
        return ended

    def close(self) -> None:
        """Stop the background parts started in this process (counters
        first, so their last flush still finds the rest running), and leave
        the metrics' scrape-time gauges (a scrape no longer reads this app's
        Redis, which may be gone)."""
        self.closed = True
        names = ("_stats", "_leases", "_guardian", "_broker", "_heartbeater")
        with self._lock:
            parts = [getattr(self, name) for name in names]
            for name in names:
                setattr(self, name, None)
            self._connections = None
        for part in parts:
            if part is not None and part.pid == os.getpid():
                part.stop()
        self.deferred.loop.stop()
        self.outages.close()
