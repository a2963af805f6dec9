"""HTTP: the stream and recover responses, and the blueprint that serves them.

:func:`stream_response` and :func:`recover_response` do all the checking
(stream id, identity, ownership, ``Last-Event-ID``) before the body starts, so
every refusal is a JSON error with the right status, never a broken stream.
Apps that want their own URLs call them through
:meth:`SSEResilience.stream_response
<flask_sse_resilience.SSEResilience.stream_response>`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from redis import exceptions as rx

from .. import signals
from ..errors import (
    ConnectionLimitExceeded,
    InvalidLastEventId,
    RedisOutOfMemory,
    RedisUnavailable,
    StoreError,
    StreamIdTaken,
    StreamKeyTaken,
    StreamLimitExceeded,
    StreamNotFound,
)
from ..models import StartFrom, StreamState, to_iso
from ..redisio.failures import UNAVAILABLE, store_error
from ..redisio.target import is_wrong_database
from ..serve.admission import Connection, Refuse
from ..serve.eventstream import EventStream
from ..state import EXTENSION_KEY, State, get_state
from . import dashboard
from .streamrequest import (
    asking_user,
    check_stream_id,
    current_user,
    requested_position,
    start_from_param,
)

#: Headers of every stream response, set before the body starts.
STREAM_HEADERS = {
    "Content-Type": "text/event-stream",
    # no-transform: no proxy or compression layer may rewrite (and hold
    # back) the stream's bytes.
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}

#: The HTTP answer of each data-layer error that escapes a view.
STATUS: dict[type[StoreError], int] = {
    StreamIdTaken: 409,
    StreamKeyTaken: 409,
    StreamLimitExceeded: 429,
    RedisUnavailable: 503,
    RedisOutOfMemory: 503,
}


def stream_response(state: State, stream_id: str) -> Response:
    """Return the SSE response for ``stream_id`` (see the module docstring).

    :raises InvalidStreamId: 400, a malformed id (checked before any Redis call).
    :raises InvalidLastEventId: 400, a malformed ``Last-Event-ID`` or one ahead
        of everything a live stream has sent (an ended stream answers such a
        client with its terminal event).
    :raises InvalidStartFrom: 400, a ``from`` other than ``snapshot``,
        ``start`` or ``latest``.
    An ended stream whose terminal event the client already has (its
    ``Last-Event-ID``) is answered 204 No Content, which stops an EventSource.

    :raises AuthenticationRequired: 401, the identity loader returned None.
    :raises InvalidStreamToken: 401, a bad, expired or foreign ``token``.
    :raises StreamNotFound: 404, unknown, expired or another user's stream.
    :raises ConnectionLimitExceeded: 429, the user holds
        ``SSE_RESILIENCE_MAX_CONNECTIONS_PER_USER`` connections already.
    :raises redis.exceptions.RedisError: one of
        :data:`~flask_sse_resilience.redisio.failures.UNAVAILABLE`: Redis cannot be
        reached (the blueprint answers 503; see :func:`error_response`).
    """
    check_stream_id(state, stream_id)
    last_event_id = requested_position()
    start_from = start_from_param()
    user, token_expires = asking_user(state, stream_id, request.args.get("token"))
    # Most streams asked for are live: the lease comes in the same round trip.
    conn = state.connections.open(
        stream_id, user, may_follow=lambda r: state.may_follow(r, user)
    )
    if conn is None:
        raise StreamNotFound()
    decision = conn.decide(last_event_id)
    if isinstance(decision, Refuse):
        conn.close()  # gives back the lease it may hold
    match decision:
        case Refuse.AHEAD:
            raise InvalidLastEventId()
        case Refuse.HAS_END:
            # 204 is the one answer that makes a browser's EventSource stop
            # reconnecting for good.
            return Response(status=204, headers={"Cache-Control": "no-cache"})
        case Refuse.NO_LEASE:
            raise ConnectionLimitExceeded(math.ceil(state.settings.heartbeat_interval))
    # An ended stream's short response keeps a lease if it got one (given back
    # when the body closes) and is served without one at the limit.
    stream = event_stream(
        state,
        conn,
        decision.last_event_id,
        start_from,
        token_expires=token_expires,
        refresh_lead=state.settings.token_refresh_lead,
        max_age=state.settings.max_connection_age * random.uniform(0.8, 1.2),
        client_socket=request.environ.get("gunicorn.socket"),
    )
    # direct_passthrough: the server iterates our body itself (no per-chunk
    # encoding layer) and calls its close(), which runs even for a body that
    # never started (a generator's own finally would not run then).
    return Response(
        StreamBody(stream.frames(), conn.close),
        headers=STREAM_HEADERS,
        direct_passthrough=True,
    )


def event_stream(
    state: State,
    conn: Connection,
    last_event_id: str | None,
    start_from: StartFrom,
    **options: Any,
) -> EventStream:
    """The :class:`EventStream` serving an admitted connection from
    ``last_event_id``: the app's stores, broker (a live stream only) and
    settings, and the connect and disconnect signals; ``options`` set the
    rest of its fields."""
    stream_id = conn.stream_id
    active = conn.record.state is StreamState.ACTIVE
    return EventStream(
        connection=conn,
        last_event_id=last_event_id,
        log=state.log,
        registry=state.registry,
        broker=state.broker if active else None,
        run_pipeline=state.shared.run,
        keepalive=state.settings.heartbeat_interval,
        start_from=start_from,
        on_connect=lambda: state.emit(
            signals.client_connected,
            stream_id=stream_id,
            resumed=last_event_id is not None,
            live=active,
        ),
        on_disconnect=lambda: state.emit(
            signals.client_disconnected, stream_id=stream_id
        ),
        **options,
    )


def recover_response(state: State, stream_id: str) -> Response:
    """Return the recover JSON for ``stream_id``.

    ``{"status": ..., "streamId": ...}`` with ``status`` one of ``active``,
    ``completed``, ``failed``, ``orphaned``, ``cancelled`` (and ``key`` for a
    keyed stream); an ended stream adds
    ``terminalEventType``, ``terminalEventData``, ``completedAt`` and
    ``eventId``. An unknown, expired or foreign stream is a 404 whose body also
    says ``"status": "unknown"``. Same errors as :func:`stream_response`.
    """
    check_stream_id(state, stream_id)
    user = current_user(state, stream_id)
    conn = state.connections.open(
        stream_id, user, may_follow=lambda r: state.may_follow(r, user), lease=False
    )
    if conn is None:
        refused = StreamNotFound()
        body = jsonify(
            status="unknown", error=refused.error_code, message=refused.description
        )
        body.status_code = 404
        return body
    response = jsonify(recover_payload(conn))
    response.headers["Cache-Control"] = "no-store"
    return response


def recover_payload(conn: Connection) -> dict[str, Any]:
    """The recover JSON of an admitted connection's stream: ``status`` and
    ``streamId``, its ``key`` if it has one, and for an ended stream its
    terminal event (``terminalEventType``, ``terminalEventData``,
    ``completedAt``, ``eventId``)."""
    record, completion = conn.record, conn.completion
    payload: dict[str, Any] = {"status": record.state.value, "streamId": conn.stream_id}
    if record.key is not None:
        payload["key"] = record.key
    if completion is not None:  # every ended stream has one (see connections)
        payload.update(
            terminalEventType=completion.terminal_event_type,
            terminalEventData=completion.terminal_event_data,
            completedAt=to_iso(completion.completed_at),
            eventId=completion.event_id,
        )
    return payload


class StreamBody:
    """A stream response's body: its frames, and what to release on close."""

    __slots__ = ("_frames", "_release")

    def __init__(
        self, frames: Iterator[bytes], release: Callable[[], None] | None
    ) -> None:
        self._frames = frames
        self._release = release

    def __iter__(self) -> Iterator[bytes]:
        return self._frames

    def close(self) -> None:
        """Called by the WSGI server when the response ends, however it ends."""
        try:
            self._frames.close()  # type: ignore[attr-defined]
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


def _cors(response: Response) -> Response:
    """Let allow-listed origins read stream and recover responses (with
    credentials); every other origin gets no CORS headers at all."""
    origin = request.headers.get("Origin")
    if origin and origin in get_state().settings.cors_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Allow-Headers"] = "Last-Event-ID, Content-Type"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Max-Age"] = "600"
    response.vary.add("Origin")
    return response


def error_response(exc: Exception) -> Response:
    """The JSON answer to a data-layer error (or Redis unavailable) that
    escaped a view: ``{"error", "message"}`` with its status from
    :data:`STATUS`. Redis unavailable is also reported to the app's outage
    log (one line per outage, naming the Redis and the cause: see
    :mod:`~flask_sse_resilience.redisio.outages`); the answer itself never says more
    than that the store is unavailable, or full (``redis_out_of_memory``,
    with ``Retry-After``)."""
    if not isinstance(exc, StoreError):
        get_state().outages.failed(exc)  # (store_errors reported the others)
    error = exc if isinstance(exc, StoreError) else store_error(exc)
    body = jsonify(error=error.error_code, message=error.description)
    if isinstance(error, StreamKeyTaken):
        body = jsonify(
            error=error.error_code, message=error.description, streamId=error.stream_id
        )
    if isinstance(error, RedisOutOfMemory):
        body.headers["Retry-After"] = str(error.retry_after)
    body.status_code = STATUS.get(type(error), 500)
    return body


def _wrong_database(exc: rx.ResponseError) -> Response:
    """A database the server does not have (a client passed as ``redis=``;
    the package's own clients raise it as a connection error): answered and
    reported as Redis unavailable. Any other error reply is a bug, left to
    Flask (a 500 with its traceback logged)."""
    if not is_wrong_database(exc):
        raise exc
    return error_response(exc)


def install_error_handlers(app: Flask) -> None:
    """Answer the data-layer errors of :data:`STATUS` as JSON app-wide, so an
    app's own view calling ``open_stream`` answers 409, 429 or 503."""
    for error in STATUS:
        app.register_error_handler(error, error_response)


def make_blueprint(url_prefix: str) -> Blueprint:
    """Build the blueprint serving the stream and recover endpoints and the
    dashboard; Redis unavailable in any of them is the 503 JSON."""
    bp = Blueprint(
        EXTENSION_KEY,
        __name__,
        url_prefix=None if url_prefix == "/" else url_prefix,
        # The package's static folder: the browser client built from
        # clients/js, and the dashboard's page.
        static_folder=dashboard.STATIC,
        static_url_path="/static",
    )

    bp.after_request(_cors)
    for error in UNAVAILABLE:
        bp.register_error_handler(error, error_response)
    bp.register_error_handler(rx.ResponseError, _wrong_database)

    @bp.get("/streams/<stream_id>")
    def stream(stream_id: str) -> Response:
        return stream_response(get_state(), stream_id)

    @bp.get("/streams/<stream_id>/recover")
    def recover(stream_id: str) -> Response:
        return recover_response(get_state(), stream_id)

    dashboard.register(bp)
    return bp
