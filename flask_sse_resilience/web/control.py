"""HTTP for the reverse direction: cancelling a stream, finding one by key.

``POST <prefix>/streams/<id>/cancel`` asks a stream to stop (see
:mod:`~flask_sse_resilience.store.control`), with the same authorization as
following it. It changes state, so it refuses what a cross-site page can
send: the body must be JSON (``Content-Type: application/json``, which an
HTML form cannot send and a cross-origin ``fetch`` can only after a CORS
preflight), and a request whose ``Origin`` (or ``Sec-Fetch-Site``) says it
comes from another site is refused unless that origin is allow-listed in
``SSE_RESILIENCE_CORS_ORIGINS`` (403 ``cross_site_request``); a request from
this site without JSON is refused too, as 415 ``json_required``.

``GET <prefix>/keys/<key>`` answers the signed-in user's latest stream with
that key (see ``open_stream(key=...)``): what a reloaded page calls when it
lost the stream id.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, request

from .. import opening
from ..errors import (
    CrossSiteRequest,
    InvalidCancelRequest,
    InvalidStreamKey,
    JsonRequired,
    StreamNotFound,
)
from ..ids import is_valid_stream_id
from ..models import StreamState
from ..state import State, get_state
from ..store.control import MAX_REASON
from .streamrequest import check_stream_id, current_identity, current_user
from .views import recover_payload


def _same_site(state: State) -> None:
    """Refuse a request a page of another site could have made: one that
    says it comes from another site, and any whose body is not JSON (what a
    form can send; JSON from another origin takes a CORS preflight we do not
    grant). Exactly the requests refused before the two were told apart;
    only the answer to a non-JSON request from this site (or from one that
    does not say, like a script) names its real fault.

    :raises CrossSiteRequest: 403, from a foreign origin.
    :raises JsonRequired: 415, not JSON (and not from a foreign origin).
    """
    if _cross_site(state):
        raise CrossSiteRequest()
    if request.mimetype != "application/json":
        raise JsonRequired()


def _cross_site(state: State) -> bool:
    """Whether the request says it comes from another site that is not
    allow-listed (``Origin``, ``null`` included, or ``Sec-Fetch-Site``)."""
    origin = request.headers.get("Origin")
    if origin and origin != "null" and origin in state.settings.cors_origins:
        return False
    if origin and urlsplit(origin).netloc != request.host:
        return True
    return request.headers.get("Sec-Fetch-Site") == "cross-site"


def _reason() -> str | None:
    """The optional reason of a cancel request's JSON body.

    :raises InvalidCancelRequest: 400, a body that is not a JSON object, or a
        reason that is not a string of at most 200 characters.
    """
    if not request.get_data(cache=True):
        return None
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidCancelRequest()
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise InvalidCancelRequest()
    return reason


def cancel_response(state: State, stream_id: str) -> Response:
    """Answer a cancel request for ``stream_id`` (see the protocol page):
    202 ``cancelling``, 200 with the recover JSON once it ended cancelled,
    409 when it ended otherwise, 404 as for the stream endpoint."""
    check_stream_id(state, stream_id)
    _same_site(state)
    reason = _reason()
    user = current_user(state, stream_id)

    def read() -> Any:
        return state.connections.open(
            stream_id, user, may_follow=lambda r: state.may_follow(r, user), lease=False
        )

    if read() is None:
        raise StreamNotFound()
    after = opening.cancel(state, stream_id, reason, "user")
    if after is None:
        raise StreamNotFound()
    if after is StreamState.ACTIVE:
        body = jsonify(streamId=stream_id, status="cancelling")
        body.status_code = 202
        return body
    if after is StreamState.CANCELLED:
        conn = read()
        if conn is None:  # expired just now
            raise StreamNotFound()
        return jsonify(recover_payload(conn))
    body = jsonify(
        error="stream_ended",
        message=f"The stream has ended: {after.value}.",
        streamId=stream_id,
        status=after.value,
    )
    body.status_code = 409
    return body


def key_response(state: State, key: str) -> Response:
    """Answer ``GET <prefix>/keys/<key>``: the recover JSON of the signed-in
    user's latest stream with ``key`` (active, or ended within the completion
    TTL), or 204 when there is none."""
    if not is_valid_stream_id(key):
        raise InvalidStreamKey()
    user = current_identity(state)
    stream_id = state.registry.key_holder(user, key)
    conn = None
    if stream_id is not None:
        conn = state.connections.open(
            stream_id, user, may_follow=lambda r: r.user_id == user, lease=False
        )
    if conn is None:
        return Response(status=204, headers={"Cache-Control": "no-store"})
    response = jsonify(recover_payload(conn))
    response.headers["Cache-Control"] = "no-store"
    return response


def register(bp: Blueprint) -> None:
    """Add the cancel and key endpoints to the extension's blueprint."""

    @bp.post("/streams/<stream_id>/cancel")
    def cancel(stream_id: str) -> Response:
        return cancel_response(get_state(), stream_id)

    @bp.get("/keys/<key>")
    def by_key(key: str) -> Response:
        return key_response(get_state(), key)
