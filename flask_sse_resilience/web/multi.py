"""HTTP: the multiplexed response, ``GET <prefix>/multi?streams=<id>,<id>``.

The request as a whole is checked before the body starts (ids, tokens,
cursor, the stream limit, the user's connection limit: a JSON error with its
status); each stream is then authorized on its own, and one the asker may not
follow is an ``error`` event for that stream on the response, never its data.
Per stream, the admission decision is the single route's
(:meth:`~flask_sse_resilience.serve.admission.Connection.decide`), answered in
this response's terms: an ``error`` event instead of a 400, left out instead
of a 204. The one lease of the response is owned by its
:class:`~flask_sse_resilience.serve.admission.MultiConnection`, given back
when the body closes.
"""

from __future__ import annotations

import math
import random

from flask import Blueprint, Response, request

from .. import wire
from ..errors import (
    AuthenticationRequired,
    ConnectionLimitExceeded,
    HTTPError,
    InvalidLastEventId,
    InvalidMultiRequest,
    InvalidStreamToken,
    StreamNotFound,
)
from ..ids import is_valid_stream_id, parse_event_id
from ..serve.admission import Connection, Refuse, Serve
from ..serve.eventstream import EventStream, FrameSink
from ..serve.multiplex import MultiStream, StreamBuilder
from ..state import State, get_state
from .streamrequest import asking_user, current_identity, start_from_param
from .views import STREAM_HEADERS, StreamBody, event_stream


def _stream_ids(state: State) -> list[str]:
    raw = request.args.get("streams") or ""
    ids = [part.strip() for part in raw.split(",") if part.strip()]
    limit = state.settings.max_multi_streams
    if not 1 <= len(ids) <= limit:
        raise InvalidMultiRequest(f"streams must list 1 to {limit} stream ids.")
    if len(set(ids)) != len(ids):
        raise InvalidMultiRequest("streams must not list a stream twice.")
    if not all(is_valid_stream_id(i, state.stream_id_rule) for i in ids):
        raise InvalidMultiRequest("streams holds a malformed stream id.")
    return ids


def _tokens(count: int) -> list[str | None]:
    raw = request.args.get("tokens")
    if raw is None:
        return [None] * count
    tokens = raw.split(",")
    if len(tokens) != count:
        raise InvalidMultiRequest(
            "tokens must hold one entry per stream (may be empty)."
        )
    return [t or None for t in tokens]


def _positions(count: int) -> list[str | None]:
    value = request.headers.get("Last-Event-ID") or request.args.get("lastEventId")
    positions = (
        wire.parse_cursor(value, count) if value is None or len(value) < 4096 else None
    )
    if positions is None or any(
        p is not None and (len(p) > 100 or parse_event_id(p) is None) for p in positions
    ):
        raise InvalidLastEventId()
    return positions


def multi_response(state: State) -> Response:
    """Return the multiplexed SSE response (see the protocol page).

    :raises InvalidMultiRequest: 400, a missing, malformed, repeated or too
        long ``streams`` list, or ``tokens`` not aligned with it.
    :raises InvalidLastEventId: 400, a cursor that is not one position (or
        none) per stream.
    :raises AuthenticationRequired: 401, a stream without a token and nobody
        signed in.
    :raises ConnectionLimitExceeded: 429, the user's connection limit.
    A client whose cursor holds the terminal event of every stream it may
    follow is answered 204 No Content.
    """
    ids = _stream_ids(state)
    tokens = _tokens(len(ids))
    positions = _positions(len(ids))
    start_from = start_from_param()
    users: dict[str, str] = {}
    refused: dict[str, HTTPError] = {}
    expiries: list[float] = []
    identity: str | None = None
    for stream_id, token in zip(ids, tokens, strict=True):
        try:
            if token is None and identity is None:
                identity = current_identity(state)
            user, expires = asking_user(state, stream_id, token)
        except InvalidStreamToken as exc:
            refused[stream_id] = exc
            continue
        users[stream_id] = user
        if expires is not None:
            expiries.append(expires)
    lease_user = identity or next(iter(users.values()), None)
    if lease_user is None:
        raise AuthenticationRequired()
    admitted = state.connections.open_many(
        ids,
        lease_user,
        may_follow=lambda sid, r: sid in users and state.may_follow(r, users[sid]),
    )
    limit_retry = math.ceil(state.settings.heartbeat_interval)
    if admitted.lease is None:  # one lease for the whole response
        raise ConnectionLimitExceeded(limit_retry)

    def serve(conn: Connection, last_event_id: str | None) -> StreamBuilder:
        def build(sink: FrameSink) -> EventStream:
            return event_stream(state, conn, last_event_id, start_from, sink=sink)

        return build

    refusals: list[tuple[str, HTTPError]] = []
    streams: dict[int, StreamBuilder] = {}
    conns = admitted.connections
    for index, (stream_id, conn) in enumerate(zip(ids, conns, strict=True)):
        if conn is None:
            refusals.append((stream_id, refused.get(stream_id, StreamNotFound())))
            continue
        match conn.decide(positions[index]):
            case Serve(last_event_id):
                streams[index] = serve(conn, last_event_id)
            case Refuse.AHEAD:
                refusals.append((stream_id, InvalidLastEventId()))
            case Refuse.HAS_END:
                pass  # this client has its end already: left out
            case Refuse.NO_LEASE:  # (never: every stream borrows the lease)
                raise ConnectionLimitExceeded(limit_retry)
    if not refusals and not streams:
        admitted.close()
        return Response(status=204, headers={"Cache-Control": "no-cache"})
    multi = MultiStream(
        ids,
        positions,
        refusals=refusals,
        streams=streams,
        keepalive=state.settings.heartbeat_interval,
        max_age=state.settings.max_connection_age * random.uniform(0.8, 1.2),
        token_expires=min(expiries) if expiries else None,
        refresh_lead=state.settings.token_refresh_lead,
        client_socket=request.environ.get("gunicorn.socket"),
    )
    return Response(
        StreamBody(multi.frames(), admitted.close),
        headers=STREAM_HEADERS,
        direct_passthrough=True,
    )


def register(bp: Blueprint) -> None:
    """Add ``GET /multi`` to the extension's blueprint."""

    @bp.get("/multi")
    def multi() -> Response:
        return multi_response(get_state())
