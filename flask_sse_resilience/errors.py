"""Exceptions raised by flask-sse-resilience.

Every exception derives from :class:`SSEResilienceError`. Two kinds:

- :class:`StoreError`: raised by the data layer (registering a stream, Redis
  unavailable), also outside any request (an RQ job, a CLI). They are not
  HTTP exceptions; when one escapes a view, the extension's error handler
  (:mod:`~flask_sse_resilience.web.views`) answers it as JSON with its status.
- :class:`HTTPError`: refusals of a request, raised only by the HTTP layer.
  They also derive from the matching werkzeug exception, so Flask renders
  them with the right status code and the JSON body
  ``{"error": ..., "message": ...}``.
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.exceptions import (
    BadRequest,
    Forbidden,
    HTTPException,
    NotFound,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
)


class SSEResilienceError(Exception):
    """Base class of every error this extension raises."""


class ConfigurationError(SSEResilienceError, ValueError):
    """A setting has a bad value; the message names the config key."""


class ConfigurationWarning(UserWarning):
    """An ``SSE_RESILIENCE_*`` config key that has no effect: one no setting
    is named (a misspelling; the message names the nearest valid key), or one
    set after ``init_app`` (settings are read once, there). Shown by default,
    once per place, like every ``UserWarning``.

    .. versionadded:: 0.1
    """


class InvalidEventError(SSEResilienceError, ValueError):
    """An event's type or data cannot be sent; nothing was written."""


class StreamNotActiveError(SSEResilienceError):
    """The stream is unknown, expired, or already ended; nothing was written."""


class StreamCancelled(StreamNotActiveError):
    """The stream was asked to stop (or has ended ``cancelled``): a
    producer's ``send``, ``complete`` and ``fail`` raise it, and nothing was
    written. Leaving the producer's ``with`` block with it ends the stream
    ``cancelled``; see :meth:`Producer.cancel
    <flask_sse_resilience.produce.producer.Producer.cancel>` to end it with a
    partial result."""

    def __init__(self, stream_id: str, request: dict[str, Any] | None = None) -> None:
        request = request or {}
        #: The stream asked to stop.
        self.stream_id = stream_id
        #: Why, as the canceller said (at most 200 characters), or None.
        self.reason: str | None = request.get("reason")
        #: Who asked: ``user``, ``app``, ``abandoned`` or ``superseded``
        #: (None when not known to this process).
        self.by: str | None = request.get("by")
        super().__init__(f"stream {stream_id!r} was cancelled (by {self.by})")


class ProducerConflictError(SSEResilienceError):
    """Another producer has taken over this stream; this one may not write."""


class LogBehindError(ProducerConflictError):
    """The stream's log holds fewer events than this producer wrote: Redis
    acknowledged events and lost them (an asynchronous replica was promoted
    before it received them). The producer re-sends them if it still has
    them (see :class:`~flask_sse_resilience.produce.producer.Producer`)."""

    def __init__(self, message: str, logged: int) -> None:
        super().__init__(message)
        #: The last sequence number the log holds.
        self.logged = logged


class HTTPError(SSEResilienceError, HTTPException):
    """An error answered as JSON: ``{"error": code, "message": description}``."""

    error_code = "error"

    def get_body(self, environ: Any = None, scope: Any = None) -> str:
        """Return the JSON body."""
        return json.dumps({"error": self.error_code, "message": self.description})

    def get_headers(
        self, environ: Any = None, scope: Any = None
    ) -> list[tuple[str, str]]:
        """Return the headers of a JSON answer."""
        return [("Content-Type", "application/json")]


class InvalidStreamId(HTTPError, BadRequest):
    """The stream id in the URL is not of the allowed form."""

    error_code = "invalid_stream_id"
    description = "Stream ids are 1-128 characters of A-Z, a-z, 0-9, '_' and '-'."


class InvalidLastEventId(HTTPError, BadRequest):
    """The ``Last-Event-ID`` header is not an event id of this stream."""

    error_code = "invalid_last_event_id"
    description = "Last-Event-ID must be an event id sent by this stream."


class InvalidStartFrom(HTTPError, BadRequest):
    """The ``from`` query parameter is not ``snapshot``, ``start`` or ``latest``."""

    error_code = "invalid_from"
    description = "from must be snapshot, start or latest."


class InvalidMultiRequest(HTTPError, BadRequest):
    """A multiplexed request (``GET <prefix>/multi``) whose ``streams``,
    ``tokens`` or cursor cannot be read, or that names too many streams."""

    error_code = "invalid_multi_request"
    description = "streams must list 1 to the configured number of stream ids."

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description)


class AuthenticationRequired(HTTPError, Unauthorized):
    """The identity loader returned no user."""

    error_code = "authentication_required"
    description = "Sign in to follow streams."


class StreamNotFound(HTTPError, NotFound):
    """No such stream for this user (unknown, expired, or someone else's)."""

    error_code = "stream_not_found"
    description = "No such stream."


class StoreError(SSEResilienceError):
    """An error of the data layer that has a JSON answer should it escape a
    view: ``{"error": error_code, "message": description}``."""

    error_code = "error"
    description = ""

    def __init__(self, description: str | None = None) -> None:
        if description is not None:
            self.description = description
        super().__init__(self.description)


class StreamIdTaken(StoreError):
    """``open_stream`` was given a stream id that is already in use (a 409
    if it escapes a view)."""

    error_code = "stream_id_taken"
    description = "A stream with this id already exists."


class StreamLimitExceeded(StoreError):
    """The user has ``SSE_RESILIENCE_MAX_STREAMS_PER_USER`` active streams (a
    429 if it escapes a view)."""

    error_code = "too_many_streams"
    description = "Too many active streams; wait for one to end."


class StreamKeyTaken(StoreError):
    """``open_stream(key=..., on_conflict="reject")``: the owner has an
    active stream with this key (a 409 if it escapes a view)."""

    error_code = "stream_key_taken"
    description = "An active stream with this key exists."

    def __init__(self, stream_id: str) -> None:
        super().__init__()
        #: The id of the active stream holding the key.
        self.stream_id = stream_id


class ConnectionLimitExceeded(HTTPError, TooManyRequests):
    """The user holds ``SSE_RESILIENCE_MAX_CONNECTIONS_PER_USER`` connections."""

    error_code = "too_many_connections"
    description = "Too many open stream connections; close one and retry."

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after

    def get_headers(
        self, environ: Any = None, scope: Any = None
    ) -> list[tuple[str, str]]:
        """JSON, plus ``Retry-After`` in seconds."""
        return [*super().get_headers(), ("Retry-After", str(self.retry_after))]


class InvalidStreamToken(HTTPError, Unauthorized):
    """The ``token`` query parameter is malformed, expired, or for another
    stream."""

    error_code = "invalid_stream_token"
    description = "The stream token is invalid or expired; get a new one."


class RedisUnavailable(StoreError):
    """Redis could not be reached; the client should retry later (a 503 if it
    escapes a view)."""

    error_code = "redis_unavailable"
    description = "The stream store is unavailable; retry shortly."


class RedisOutOfMemory(RedisUnavailable):
    """Redis refused a write because it is full (``maxmemory`` reached under
    ``maxmemory-policy noeviction``): nothing was written. A 503 with
    ``Retry-After`` if it escapes a view. A :class:`RedisUnavailable`, so
    code that handles that handles this too.

    .. versionadded:: 0.1
    """

    error_code = "redis_out_of_memory"
    description = "The stream store is full; retry later."

    #: Seconds a client is asked to wait (``Retry-After``): memory comes back
    #: when an operator frees some or raises ``maxmemory``, or as ended
    #: streams expire, not within a quick retry.
    retry_after = 10


class CrossSiteRequest(HTTPError, Forbidden):
    """A state-changing request (a cancel) from another site: its ``Origin``
    (``null`` included), or ``Sec-Fetch-Site: cross-site``, names a site
    that is not allow-listed."""

    error_code = "cross_site_request"
    description = (
        "Cancel with a same-origin (or allow-listed) POST whose body is JSON "
        "(Content-Type: application/json)."
    )


class JsonRequired(HTTPError, UnsupportedMediaType):
    """A cancel from this site whose body is not JSON (say, an HTML form's):
    refused like a cross-site one, since a form is what another site can
    send, but answered as what it is, a wrong content type."""

    error_code = "json_required"
    description = "Send the cancel as JSON, with Content-Type: application/json."


class InvalidCancelRequest(HTTPError, BadRequest):
    """A cancel request's body is not ``{}`` or ``{"reason": <text>}``."""

    error_code = "invalid_cancel_request"
    description = 'The body must be a JSON object; "reason" at most 200 characters.'


class InvalidStreamKey(HTTPError, BadRequest):
    """A stream key in the URL is not of the allowed form."""

    error_code = "invalid_stream_key"
    description = "Stream keys are 1-128 characters of A-Z, a-z, 0-9, '_' and '-'."


class DashboardNotFound(HTTPError, NotFound):
    """The dashboard is off, or on without an admin check: it does not exist."""

    error_code = "not_found"
    description = "Not found."


class DashboardForbidden(HTTPError, Forbidden):
    """The app's admin check refused the current user."""

    error_code = "forbidden"
    description = "The dashboard is for admins."


class InvalidDashboardQuery(HTTPError, BadRequest):
    """A dashboard URL's ``sort``, ``order`` or ``page`` is not allowed."""

    error_code = "bad_request"
    description = "sort must be a column name, order asc or desc, page 1-10000."
