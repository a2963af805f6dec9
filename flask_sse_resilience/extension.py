"""The Flask extension object: configuration, wiring and the public API."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, has_app_context

from . import gunicorn, opening
from .cli import sse_cli
from .models import CompletionData, OnConflict, StreamId, StreamMetadata, StreamState
from .opening import store_errors
from .produce.producer import Producer
from .produce.snapshots import AutoSnapshot
from .redisio.commands import RedisClient
from .redisio.connect import make_client
from .redisio.target import Target
from .settings import (
    check_compression,
    check_option_names,
    load_settings,
    warn_unknown_keys,
)
from .state import EXTENSION_KEY, Authorizer, Hooks, IdentityLoader, State, find_state
from .store.completion import CompletionStore
from .store.eventlog import EventLog
from .store.guardian import StreamGuardian
from .store.registry import StreamRegistry
from .store.stats import count_signals
from .web import control, multi
from .web.tokens import make_token
from .web.views import (
    install_error_handlers,
    make_blueprint,
    recover_response,
    stream_response,
)


class SSEResilience:
    """Resilient Server-Sent Events for a Flask app.

    ::

        sse = SSEResilience(app, identity=lambda: session.get("user"))
        # or, with an application factory:
        sse = SSEResilience()
        sse.init_app(app)

    :param app: the app to set up now, or None to call :meth:`init_app` later.
    :param redis: a ready ``redis.Redis`` (or ``RedisCluster``) to use instead
        of building one from ``SSE_RESILIENCE_REDIS_URL``.
    :param identity: a callable returning the current user's id, or None when
        nobody is signed in (the request is then answered 401). Also settable
        with :meth:`identity_loader`.
    :param dashboard_auth: the dashboard's admin check; see
        :meth:`dashboard_auth`.
    :param options: any setting by its lower-case name without the prefix,
        e.g. ``heartbeat_interval=5``; beats the app config.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        redis: RedisClient | None = None,
        identity: IdentityLoader | None = None,
        dashboard_auth: Callable[[], bool] | None = None,
        **options: Any,
    ) -> None:
        check_option_names(options)
        self._redis = redis
        #: The app's callbacks, shared by every app this object set up.
        self.hooks = Hooks(identity=identity, dashboard_auth=dashboard_auth)
        self._options = options
        #: The apps set up by this object (their state lives in the app).
        self._apps: weakref.WeakSet[Flask] = weakref.WeakSet()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Validate the config, connect the stores and register the blueprint.

        Settings are read here, once (see :mod:`~flask_sse_resilience.settings`
        for keys that are unknown or set later).

        :raises ConfigurationError: for a bad setting, naming its key.
        :raises RuntimeError: if the app already has an SSEResilience.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "this app already has an SSEResilience; create one per app and "
                "call init_app once (use app factories for several apps)"
            )
        settings = load_settings(app.config, self._options)
        check_compression(app.config)
        warn_unknown_keys(app.config)
        client = self._redis or make_client(
            settings.redis_url, max_connections=settings.redis_max_connections
        )
        state = State(
            app,
            settings,
            client,
            self.hooks,
            liveness_client=(
                None
                if self._redis is not None
                else lambda: make_client(settings.redis_url, max_connections=2)
            ),
            target=Target.of(
                settings.redis_url, app.config, self._options, self._redis
            ),
            adopt=gunicorn.adopt,
        )
        app.extensions[EXTENSION_KEY] = state
        self._apps.add(app)
        blueprint = make_blueprint(settings.url_prefix)
        control.register(blueprint)
        multi.register(blueprint)
        app.register_blueprint(blueprint)
        install_error_handlers(app)
        app.cli.add_command(sse_cli)
        if settings.dashboard:
            count_signals(app, lambda: state.stats)
            state.outages.on_refused(lambda: state.stats.count("oom"))
        if settings.metrics:
            from . import metrics

            metrics.install(app, state)
        # Start the guardian (and the dashboard's reports) lazily in each
        # process that serves requests, and attach to its gunicorn worker for
        # a graceful stop: after gunicorn forks, never in its master.
        app.before_request(state.start_background)

    def identity_loader(self, loader: IdentityLoader) -> IdentityLoader:
        """Decorator: use ``loader`` to tell who the current user is.

        It runs inside the request and returns the user id, or None when
        nobody is signed in. Never derive it from a client-sent header.
        """
        self.hooks.identity = loader
        return loader

    def authorize(self, authorizer: Authorizer) -> Authorizer:
        """Decorator: decide who may follow and recover a stream.

        ``authorizer(stream, user_id)`` gets the stream's
        :class:`~flask_sse_resilience.StreamMetadata` and the current user id
        and returns True to allow. Without one, only the stream's owner may.
        A refused user gets the same 404 as for an unknown stream. Use it for
        shared streams, e.g. a team channel::

            @sse.authorize
            def team_members(stream, user_id):
                return user_id in teams[stream.metadata["team"]]
        """
        self.hooks.authorizer = authorizer
        return authorizer

    def dashboard_auth(self, check: Callable[[], bool]) -> Callable[[], bool]:
        """Decorator: allow the operations dashboard to users ``check()``
        accepts (it runs inside the request; return True for admins).

        The dashboard (``SSE_RESILIENCE_DASHBOARD``) is never served without
        one: its URLs answer 404 and an error is logged. Refused users get 403.
        """
        self.hooks.dashboard_auth = check
        return check

    def stream_token(
        self,
        stream_id: str,
        user_id: str | None = None,
        *,
        app: Flask | None = None,
    ) -> str:
        """Return a signed token letting ``user_id`` (by default the current
        user) follow and recover ``stream_id``, for clients that cannot send
        the session cookie: ``<stream url>?token=<token>``.

        The token is bound to the stream and the user and expires after
        ``SSE_RESILIENCE_TOKEN_MAX_AGE`` seconds; it is checked against the
        authorizer like any identity. It is a secret: keep it out of logs.

        :raises RuntimeError: without ``SECRET_KEY``, or without a user.
        """
        state = self._state(app)
        if user_id is None:
            loader = state.hooks.identity
            user_id = loader() if loader is not None else None
        if not user_id:
            raise RuntimeError("stream_token() needs a user_id or a signed-in user")
        return make_token(state.app.secret_key, stream_id, str(user_id))

    def _state(self, app: Flask | None) -> State:
        if app is None and has_app_context():
            app = current_app._get_current_object()  # type: ignore[attr-defined]
        if app is None and len(self._apps) == 1:
            app = next(iter(self._apps))
        found = find_state(app) if app is not None else None
        if found is None or found.hooks is not self.hooks:
            raise RuntimeError(
                "this app is not registered with this SSEResilience; did you "
                "forget init_app? (outside an app context with several apps, "
                "pass app=)"
            )
        return found

    def open_stream(
        self,
        user_id: str,
        stream_type: str = "generation",
        metadata: dict[str, Any] | None = None,
        stream_id: str | None = None,
        *,
        key: str | None = None,
        on_conflict: OnConflict = "reject",
        ttl: int | None = None,
        completion_ttl: int | None = None,
        max_events: int | None = None,
        cancel_when_abandoned: float | None = None,
        app: Flask | None = None,
    ) -> StreamId:
        """Register a new active stream owned by ``user_id``; return its id.

        Only the owner can follow, recover or cancel it. Without ``stream_id``
        an unguessable one is made.

        :param key: (say, a chat id) the owner has at most one active stream
            per key, enforced atomically: ``on_conflict`` says what happens
            when one exists: ``"reject"`` raises :class:`StreamKeyTaken`
            (with its id), ``"cancel"`` ends it ``cancelled`` (``by:
            "superseded"``) and opens this one, ``"join"`` returns its id with
            ``joined`` True (start no producer then). Keys are per owner; a
            keyed stream's id is always made here. ``GET <prefix>/keys/<key>``
            finds the latest one again.
        :param ttl: seconds the open stream lives at most; ``completion_ttl``
            seconds its end is kept; ``max_events`` events its log keeps (each
            overrides its setting for this stream, within
            :data:`~flask_sse_resilience.models.RETENTION_BOUNDS`).
        :param cancel_when_abandoned: cancel the stream (``by: "abandoned"``)
            once no client has followed it for this many seconds, across
            every worker and host (default
            ``SSE_RESILIENCE_CANCEL_WHEN_ABANDONED``; 0 never).
        :raises ValueError: for a malformed ``stream_id`` or ``key``, an empty
            ``user_id``, an unknown ``on_conflict`` (or ``cancel``/``join``
            without ``key``), ``stream_id`` together with ``key``, metadata
            that is not JSON-serializable (naming the key), or a retention
            value out of bounds.
        :raises StreamIdTaken: if ``stream_id`` is in use (a 409 if unhandled).
        :raises StreamKeyTaken: ``reject`` and the key is taken (409).
        :raises RedisUnavailable: if Redis cannot be reached (a 503 if unhandled).
        """
        return opening.open_stream(
            self._state(app),
            user_id,
            stream_type,
            metadata,
            stream_id,
            key=key,
            on_conflict=on_conflict,
            retention={
                "ttl": ttl,
                "completion_ttl": completion_ttl,
                "max_events": max_events,
                "cancel_when_abandoned": cancel_when_abandoned,
            },
        )

    def cancel(
        self, stream_id: str, reason: str | None = None, *, app: Flask | None = None
    ) -> StreamState | None:
        """Ask ``stream_id`` to stop, wherever its producer runs (``by:
        "app"``); owners cancel with ``POST <prefix>/streams/<id>/cancel``.

        Returns its state afterwards: ``ACTIVE`` means asked (its producer
        ends it ``cancelled``; the guardian does after
        ``SSE_RESILIENCE_CANCEL_GRACE``); ``CANCELLED``, it has ended
        cancelled (now, if its producer was dead; or before); another ended
        state, it had ended otherwise and nothing changed; None, no such
        stream. Safe to repeat: the first request's reason is kept.

        :raises ValueError: for a reason over 200 characters.
        :raises RedisUnavailable: if Redis cannot be reached.
        """
        return opening.cancel(self._state(app), stream_id, reason, "app")

    def producer(
        self,
        stream_id: str,
        *,
        app: Flask | None = None,
        retry_for: float | None = None,
        coalesce_ms: int | None = None,
        snapshots: AutoSnapshot | None = None,
    ) -> Producer:
        """Return the context manager that writes ``stream_id``'s events.

        Works in a request, a greenlet, or another process that reaches the
        same Redis. See :class:`~flask_sse_resilience.produce.producer.Producer`; it
        hears cancel requests over this process's pub/sub link (the fast
        path) and with its heartbeat.

        :param retry_for: seconds to keep retrying a write while Redis is
            unavailable (each write is idempotent, so nothing is doubled);
            0 raises after the client's own quick retries. By default
            ``SSE_RESILIENCE_PRODUCER_RETRY_FOR`` (30 s), enough to ride out a
            Sentinel or Cluster failover.
        :param coalesce_ms: hold sends up to this many milliseconds and write
            them together (see :mod:`~flask_sse_resilience.produce.coalescer`); 0
            writes each at once. By default ``SSE_RESILIENCE_COALESCE_MS``.
        :param snapshots: keep a snapshot for late joiners every N events
            (see :class:`~flask_sse_resilience.produce.snapshots.AutoSnapshot`).
        """
        state = self._state(app)
        return opening.producer(state, stream_id, retry_for, coalesce_ms, snapshots)

    def stream_response(self, stream_id: str) -> Response:
        """The SSE response for ``stream_id``, for use in the app's own views.

        Same checks, headers and errors as ``GET <prefix>/streams/<id>``.
        """
        state = self._state(None)
        with store_errors(state):
            return stream_response(state, stream_id)

    def recover_response(self, stream_id: str) -> Response:
        """The recover JSON for ``stream_id``, for use in the app's own views."""
        state = self._state(None)
        with store_errors(state):
            return recover_response(state, stream_id)

    def get_stream(
        self, stream_id: str, *, app: Flask | None = None
    ) -> StreamMetadata | None:
        """Return the stream's registry record, or None."""
        return self._state(app).registry.get(stream_id)

    def get_completion(
        self, stream_id: str, *, app: Flask | None = None
    ) -> CompletionData | None:
        """Return the stream's stored terminal event, or None."""
        return self._state(app).completions.get_completion(stream_id)

    def guardian(self, app: Flask | None = None) -> StreamGuardian:
        """This process's :class:`~flask_sse_resilience.store.guardian.StreamGuardian`
        for the app; ``guardian().run_once()`` sweeps now."""
        return self._state(app).guardian

    def start_background(self, app: Flask | None = None) -> None:
        """Schedule the guardian in this process now (if enabled).

        Web workers do this on their first request; call it at worker start
        (see :mod:`flask_sse_resilience.gunicorn`) or in a non-web process that
        should take part in sweeping.
        """
        self._state(app).start_background()

    def registry(self, app: Flask | None = None) -> StreamRegistry:
        """The app's :class:`~flask_sse_resilience.store.registry.StreamRegistry`."""
        return self._state(app).registry

    def completions(self, app: Flask | None = None) -> CompletionStore:
        """The app's :class:`~flask_sse_resilience.store.completion.CompletionStore`."""
        return self._state(app).completions

    def event_log(self, app: Flask | None = None) -> EventLog:
        """The app's :class:`~flask_sse_resilience.store.eventlog.EventLog`."""
        return self._state(app).log
