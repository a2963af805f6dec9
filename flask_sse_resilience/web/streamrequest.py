"""Reading a stream request: who asks (a stream token, else the app's
identity loader) and from where (``Last-Event-ID``, ``from``), refused with the
typed errors the views answer as JSON."""

from __future__ import annotations

from flask import request

from ..errors import (
    AuthenticationRequired,
    InvalidLastEventId,
    InvalidStartFrom,
    InvalidStreamId,
)
from ..ids import is_valid_stream_id, parse_event_id
from ..models import START_FROM, StartFrom
from ..state import State
from .tokens import read_token_expiry


def current_user(state: State, stream_id: str) -> str:
    """The user asking: from a stream token if one is given, else the app's
    identity loader. Never from anything else the client sends."""
    return asking_user(state, stream_id, request.args.get("token"))[0]


def asking_user(
    state: State, stream_id: str, token: str | None
) -> tuple[str, float | None]:
    """The user asking for ``stream_id`` and when their credential expires
    (epoch seconds): from ``token`` if given, else the identity loader
    (expiry None)."""
    if token is not None:
        return read_token_expiry(
            state.app.secret_key, token, stream_id, state.settings.token_max_age
        )
    return current_identity(state), None


def current_identity(state: State) -> str:
    """The signed-in user, from the app's identity loader.

    :raises AuthenticationRequired: 401, nobody is signed in.
    """
    loader = state.hooks.identity
    if loader is None:
        raise RuntimeError(
            "no identity loader: pass identity= to SSEResilience or decorate a "
            "function with @sse.identity_loader"
        )
    user = loader()
    if user is None or user == "":
        raise AuthenticationRequired()
    return str(user)


def check_stream_id(state: State, stream_id: str) -> None:
    """Refuse a malformed stream id before any Redis call.

    :raises InvalidStreamId: 400.
    """
    if not is_valid_stream_id(stream_id, state.stream_id_rule):
        raise InvalidStreamId()


def requested_position() -> str | None:
    """The client's position: the ``Last-Event-ID`` header, or else a
    ``lastEventId`` query parameter (a new ``EventSource`` cannot set headers,
    so a client resuming by itself puts it in the URL).

    :raises InvalidLastEventId: 400, longer than 100 characters or not an id.
    """
    value = request.headers.get("Last-Event-ID") or request.args.get("lastEventId")
    if value is None or value == "":
        return None
    if len(value) > 100 or parse_event_id(value) is None:
        raise InvalidLastEventId()
    return value


def start_from_param() -> StartFrom:
    """Where a client without a cursor starts: the ``from`` query parameter
    (``snapshot`` by default; ignored when the client has a cursor)."""
    value = request.args.get("from") or "snapshot"
    for mode in START_FROM:
        if value == mode:
            return mode
    raise InvalidStartFrom()
