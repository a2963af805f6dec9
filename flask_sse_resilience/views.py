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
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

from flask import Blueprint, Response, current_app, jsonify, request

from . import dashboard, signals
from .errors import (
    AuthenticationRequired,
    ConnectionLimitExceeded,
    InvalidLastEventId,
    InvalidStreamId,
    RedisUnavailable,
    StreamNotFound,
)
from .ids import is_valid_stream_id, parse_event_id
from .models import CompletionData, StreamMetadata, StreamState, to_iso
from .redisutil import UNAVAILABLE, hash_to_text
from .state import State
from .streaming import EventStream
from .tokens import read_token

EXTENSION_KEY = "sse_resilience"

#: Headers of every stream response, set before the body starts.
STREAM_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}

T = TypeVar("T")


def get_state() -> State:
    """The current app's state, with a helpful error if ``init_app`` is missing."""
    state = current_app.extensions.get(EXTENSION_KEY)
    if not isinstance(state, State):
        raise RuntimeError(
            "this app is not registered with SSEResilience; did you forget init_app?"
        )
    return state


def _current_user(state: State, stream_id: str) -> str:
    """The user asking: from a stream token if one is given, else the app's
    identity loader. Never from anything else the client sends."""
    token = request.args.get("token")
    if token is not None:
        return read_token(
            current_app.secret_key, token, stream_id, state.settings.token_max_age
        )
    loader = state.identity
    if loader is None:
        raise RuntimeError(
            "no identity loader: pass identity= to SSEResilience or decorate a "
            "function with @sse.identity_loader"
        )
    user = loader()
    if user is None or user == "":
        raise AuthenticationRequired()
    return str(user)


def _with_redis(call: Callable[[], T]) -> T:
    try:
        return call()
    except UNAVAILABLE as exc:
        raise RedisUnavailable() from exc


class _Loaded(NamedTuple):
    record: StreamMetadata
    completion: CompletionData | None
    #: The connection lease taken with the read, if one was asked for and granted.
    lease: str | None


def _load(state: State, stream_id: str, user: str, *, lease: bool) -> _Loaded:
    """Read the record and completion, and take a connection lease for
    ``user`` if ``lease``, all in one round trip; 404 unless ``user`` may
    follow the stream (the same 404 as for an unknown id; no lease kept)."""
    asked: list[str] = []

    def build(pipe: Any) -> None:
        pipe.hgetall(state.keys.stream(stream_id))
        pipe.hgetall(state.keys.completion(stream_id))
        if lease:
            asked[:] = [state.leases.queue_acquire(pipe, user)]

    raw_record, raw_completion, *grant = state.batcher.run(build)
    taken = state.leases.granted(user, asked[0], grant[0]) if grant else None
    record = StreamMetadata.from_hash(hash_to_text(raw_record)) if raw_record else None
    if record is None or not state.may_follow(record, user):
        if taken is not None:
            state.leases.release(taken)
        raise StreamNotFound()
    completion = (
        CompletionData.from_hash(hash_to_text(raw_completion))
        if raw_completion
        else None
    )
    return _Loaded(record, completion, taken)


def _give_back(state: State, lease: str | None) -> None:
    if lease is not None:
        state.leases.release(lease)


def _check(state: State, stream_id: str) -> None:
    if not is_valid_stream_id(stream_id, state.stream_id_rule):
        raise InvalidStreamId()


def _last_event_id() -> str | None:
    """The client's position: the ``Last-Event-ID`` header, or else a
    ``lastEventId`` query parameter (a new ``EventSource`` cannot set headers,
    so a client resuming by itself puts it in the URL)."""
    value = request.headers.get("Last-Event-ID") or request.args.get("lastEventId")
    if value is None or value == "":
        return None
    if len(value) > 100 or parse_event_id(value) is None:
        raise InvalidLastEventId()
    return value


def _is_ahead(last_event_id: str, newest: str | None) -> bool:
    """True if the client claims an event this stream has not sent yet."""
    if newest is None:
        return True
    return (parse_event_id(last_event_id) or (0, 0)) > (
        parse_event_id(newest) or (0, 0)
    )


def stream_response(state: State, stream_id: str) -> Response:
    """Return the SSE response for ``stream_id`` (see the module docstring).

    :raises InvalidStreamId: 400, a malformed id (checked before any Redis call).
    :raises InvalidLastEventId: 400, a malformed ``Last-Event-ID`` or one ahead
        of everything a live stream has sent (an ended stream answers such a
        client with its terminal event).
    An ended stream whose terminal event the client already has (its
    ``Last-Event-ID``) is answered 204 No Content, which stops an EventSource.

    :raises AuthenticationRequired: 401, the identity loader returned None.
    :raises InvalidStreamToken: 401, a bad, expired or foreign ``token``.
    :raises StreamNotFound: 404, unknown, expired or another user's stream.
    :raises ConnectionLimitExceeded: 429, the user holds
        ``SSE_RESILIENCE_MAX_CONNECTIONS_PER_USER`` connections already.
    :raises RedisUnavailable: 503, Redis cannot be reached.
    """
    _check(state, stream_id)
    last_event_id = _last_event_id()
    user = _current_user(state, stream_id)
    # Most streams asked for are live: take the lease in the same round trip.
    record, completion, lease = _with_redis(
        lambda: _load(state, stream_id, user, lease=True)
    )
    active = record.state is StreamState.ACTIVE
    if last_event_id is not None and _is_ahead(last_event_id, record.last_event_id):
        if not record.state.ended:
            _give_back(state, lease)
            raise InvalidLastEventId()
        # The client holds events this stream no longer has (a Redis failover
        # lost them) and the stream is over: all it still needs is the end.
        last_event_id = None
    if record.state.ended and last_event_id == record.last_event_id:
        # The client has the terminal event already. 204 is the one answer
        # that makes a browser's EventSource stop reconnecting for good.
        _give_back(state, lease)
        return Response(status=204, headers={"Cache-Control": "no-cache"})
    if active and lease is None:
        raise ConnectionLimitExceeded(math.ceil(state.settings.heartbeat_interval))
    if active:
        state.count("connects")
    # An ended stream's short response keeps a lease if it got one (given back
    # when the body closes) and is served without one at the limit.
    stream = EventStream(
        stream_id=stream_id,
        record=record,
        completion=completion,
        last_event_id=last_event_id,
        log=state.log,
        registry=state.registry,
        broker=state.broker if active else None,
        batch=state.batcher.run,
        join=(
            (lambda pipe: state.leases.queue_join(pipe, lease, stream_id))
            if lease is not None
            else None
        ),
        keepalive=state.settings.heartbeat_interval,
        client_socket=request.environ.get("gunicorn.socket"),
        on_connect=lambda: state.emit(
            signals.client_connected,
            stream_id=stream_id,
            resumed=last_event_id is not None,
        ),
        on_disconnect=lambda: state.emit(
            signals.client_disconnected, stream_id=stream_id
        ),
    )
    release = (
        (lambda: state.leases.release(lease, state.batcher.run))
        if lease is not None
        else None
    )
    # direct_passthrough: the server iterates our body itself (no per-chunk
    # encoding layer) and calls its close(), which runs even for a body that
    # never started (a generator's own finally would not run then).
    return Response(
        _Body(stream.frames(), release),
        headers=STREAM_HEADERS,
        direct_passthrough=True,
    )


def recover_response(state: State, stream_id: str) -> Response:
    """Return the recover JSON for ``stream_id``.

    ``{"status": ..., "streamId": ...}`` with ``status`` one of ``active``,
    ``completed``, ``failed``, ``orphaned``; an ended stream adds
    ``terminalEventType``, ``terminalEventData``, ``completedAt`` and
    ``eventId``. An unknown, expired or foreign stream is a 404 whose body also
    says ``"status": "unknown"``. Same errors as :func:`stream_response`.
    """
    _check(state, stream_id)
    user = _current_user(state, stream_id)
    try:
        record, completion, _ = _with_redis(
            lambda: _load(state, stream_id, user, lease=False)
        )
    except StreamNotFound as exc:
        body = jsonify(status="unknown", error=exc.error_code, message=exc.description)
        body.status_code = 404
        return body
    payload: dict[str, Any] = {"status": record.state.value, "streamId": stream_id}
    if record.state is not StreamState.ACTIVE:
        if completion is not None:
            payload.update(
                terminalEventType=completion.terminal_event_type,
                terminalEventData=completion.terminal_event_data,
                completedAt=to_iso(completion.completed_at),
                eventId=completion.event_id,
            )
        else:
            payload.update(
                terminalEventType=record.state.value,
                terminalEventData={"reason": record.state.value},
                completedAt=to_iso(record.ended_at),
                eventId=record.last_event_id,
            )
    response = jsonify(payload)
    response.headers["Cache-Control"] = "no-store"
    return response


class _Body:
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
        response.headers["Access-Control-Allow-Headers"] = "Last-Event-ID"
        response.headers["Access-Control-Allow-Methods"] = "GET, OPTIONS"
        response.headers["Access-Control-Max-Age"] = "600"
    response.vary.add("Origin")
    return response


def make_blueprint(url_prefix: str) -> Blueprint:
    """Build the blueprint serving the stream and recover endpoints."""
    bp = Blueprint(
        EXTENSION_KEY,
        __name__,
        url_prefix=None if url_prefix == "/" else url_prefix,
        static_folder="static",
        static_url_path="/static",
    )

    bp.after_request(_cors)

    @bp.get("/streams/<stream_id>")
    def stream(stream_id: str) -> Response:
        return stream_response(get_state(), stream_id)

    @bp.get("/streams/<stream_id>/recover")
    def recover(stream_id: str) -> Response:
        return recover_response(get_state(), stream_id)

    dashboard.register(bp, get_state)
    return bp
