"""The wire protocol: every byte the extension writes to a client is built here.

One home for every frame and envelope of ``docs/protocol.rst``: the event
frame and its JSON envelope, the multiplexed envelope with its combined
cursor, the ``connected`` hello (single and multiplexed), the multiplexed
``error`` event, the events sent outside any log (``reset``, and ``failed``
with reason ``expired`` or ``lost``), ``token-expiring``, the keep-alive, the
``retry:`` hint, and the dashboard's snapshot frames. Who decides *when* to
send them lives elsewhere (:mod:`~flask_sse_resilience.serve.eventstream`,
:mod:`~flask_sse_resilience.serve.multiplex`,
:mod:`~flask_sse_resilience.web.dashboard`); what they look like, only here.

Framing follows the WHATWG HTML "Server-sent events" section: ``data`` is split
on every line ending the spec recognises (``\\r\\n``, ``\\r``, ``\\n``) into one
``data:`` line each, so any text arrives as one event, byte for byte. ``event``
and ``id`` cannot carry a line break (the spec would end the field there) nor
NUL (the spec ignores an ``id`` holding one), so they are refused rather than
mangled.

This module is the floor of the package's shared vocabulary: it imports nothing
of the package and deals in plain text and bytes, so
:class:`~flask_sse_resilience.models.Event` (whose frame is built here) and
every layer above may use it.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any, NamedTuple

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_FORBIDDEN_IN_FIELD = re.compile(r"[\r\n\0]")

#: Sent while a stream is quiet. The comment keeps proxies from timing out; the
#: named ``heartbeat`` event (ignored by ``onmessage``, which only sees
#: unnamed events) lets a client's watchdog see that the connection is alive,
#: which a comment alone cannot: ``EventSource`` never exposes comments.
KEEPALIVE = b": heartbeat\nevent: heartbeat\ndata: {}\n\n"

#: Separates the positions of a multiplexed response's combined cursor.
CURSOR_SEPARATOR = ","


# -- Frames and JSON data ---------------------------------------------------


def _field(name: str, value: str) -> str:
    if _FORBIDDEN_IN_FIELD.search(value):
        raise ValueError(f"SSE {name} must not contain CR, LF or NUL: {value!r}")
    return f"{name}: {value}\n"


def encode(
    data: str,
    *,
    event: str | None = None,
    event_id: str | None = None,
    retry: int | None = None,
) -> bytes:
    """Return one SSE frame (UTF-8, ending in a blank line).

    :param data: the event data; every line of it becomes a ``data:`` line.
    :param event: the SSE event name, or None for the default ``message``.
    :param event_id: the SSE ``id``, which browsers echo as ``Last-Event-ID``.
    :param retry: the reconnection delay to advise, in milliseconds.
    :raises ValueError: if ``event`` or ``event_id`` contains CR, LF or NUL, or
        ``retry`` is negative.
    """
    parts: list[str] = []
    if event is not None:
        parts.append(_field("event", event))
    if event_id is not None:
        parts.append(_field("id", event_id))
    if retry is not None:
        if retry < 0:
            raise ValueError(f"SSE retry must not be negative: {retry}")
        parts.append(f"retry: {retry}\n")
    parts.extend(f"data: {line}\n" for line in _LINE_BREAK.split(data))
    parts.append("\n")
    return "".join(parts).encode("utf-8")


def encode_retry(milliseconds: int) -> bytes:
    """Return a frame that only sets the client's reconnection delay."""
    if milliseconds < 0:
        raise ValueError(f"SSE retry must not be negative: {milliseconds}")
    return f"retry: {milliseconds}\n\n".encode()


#: The reconnection delay advised by :data:`RECONNECT`, in milliseconds.
RECONNECT_MS = 500

#: ``retry: 500`` alone: the end of a response whose client should reconnect
#: soon and resume by its cursor (its worker stops, it lost Redis, or the
#: connection reached its maximum age).
RECONNECT = encode_retry(RECONNECT_MS)


def comment(text: str = "") -> bytes:
    """Return an SSE comment frame, ignored by clients; used as keep-alive."""
    lines = _LINE_BREAK.split(text)
    return ("".join(f": {line}\n" for line in lines) + "\n").encode("utf-8")


def dumps(value: Any) -> str:
    """Serialize event data to compact JSON that survives any transport.

    Non-ASCII text stays as is; a string holding a lone surrogate (not valid
    UTF-8) is written with ASCII escapes instead, so it still round-trips.
    NaN and infinities are refused, since ``JSON.parse`` cannot read them.

    :raises TypeError: if the value is not JSON-serializable.
    :raises ValueError: for NaN, infinities or circular references.
    """
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    return text


def json_fault(value: Any, name: str, *, allow_nan: bool = False) -> str | None:
    """Why ``value`` (called ``name``) is not JSON, to explain a failed
    :func:`dumps`: the first value, depth first, that is not of a JSON type
    (``data['when'] is a datetime``), a NaN or infinity (unless
    ``allow_nan``), a dict key that is not a string, or a container inside
    itself; None if there is none."""
    return _fault(value, name, allow_nan, set())


def _fault(value: Any, path: str, allow_nan: bool, inside: set[int]) -> str | None:
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        if allow_nan or math.isfinite(value):
            return None
        return f"{path} is {value!r}, which JSON cannot hold"
    if not isinstance(value, (dict, list, tuple)):
        kind = type(value).__name__
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        hint = (
            " (convert it first, say with .isoformat())"
            if hasattr(value, "isoformat")
            else ""
        )
        return f"{path} is {article} {kind}{hint}"
    if id(value) in inside:
        return f"{path} contains itself"
    inside.add(id(value))
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(value, dict) and not (
            key is None or isinstance(key, (str, int, float, bool))
        ):
            kind = type(key).__name__
            return f"{path} has the key {key!r}, a {kind} (keys must be strings)"
        found = _fault(item, f"{path}[{key!r}]", allow_nan, inside)
        if found is not None:
            return found
    inside.discard(id(value))
    return None


# -- Events -----------------------------------------------------------------


def envelope(event_type: str, data_json: str) -> str:
    """The JSON envelope ``{"type": ..., "data": ...}`` an event's ``data:``
    lines carry; ``data_json`` is the event's data, serialized already."""
    return '{"type":' + json.dumps(event_type) + ',"data":' + data_json + "}"


def event_frame(event_id: str | None, event_type: str, data_json: str) -> bytes:
    """One event's frame on a single stream's response: its ``id:`` (none for
    an event outside the log) and its :func:`envelope`."""
    return encode(envelope(event_type, data_json), event_id=event_id)


class Unlogged(NamedTuple):
    """An event the server makes up rather than reads from a log: it goes out
    without an ``id:`` (see :meth:`Event.unlogged
    <flask_sse_resilience.models.Event.unlogged>`)."""

    type: str
    data_json: str


#: The log no longer holds the client's position (capped): discard what was
#: shown; what the log still has follows.
LOG_TRIMMED = Unlogged("reset", '{"reason":"log-trimmed"}')

#: The end of a followed stream whose record vanished: its TTL ran out
#: (``expired``), or it went otherwise (``lost``: deleted, evicted, flushed,
#: lost with a failover). The log's scripts announce ``expired`` too (see
#: ``store/lua/heartbeat.lua`` and ``check.lua``), as they cannot tell.
EXPIRED = Unlogged("failed", '{"reason":"expired"}')
LOST = Unlogged("failed", '{"reason":"lost"}')


def reset(reason: str) -> Unlogged:
    """The ``reset`` sent before a client's replay starts over from the
    log's start: ``unknown-last-event-id`` or ``log-trimmed``.

    (Its data is spaced, ``{"reason": "..."}``, unlike :data:`LOG_TRIMMED`;
    both parse the same and are kept byte for byte.)"""
    return Unlogged("reset", json.dumps({"reason": reason}))


# -- A single stream's response ---------------------------------------------


def connected_frame(stream_id: str, heartbeat: float) -> bytes:
    """The first frame of every stream response (no ``id:`` field); it tells
    the client how often to expect a heartbeat, in milliseconds."""
    hello = {
        "type": "connected",
        "streamId": stream_id,
        "heartbeatMs": int(heartbeat * 1000),
    }
    return encode(dumps(hello))


def token_notice_at(expires_at: float | None, lead: float) -> float | None:
    """When (``time.monotonic``) to send :func:`token_expiring_frame` for a
    token expiring at ``expires_at`` (epoch seconds), or None without one."""
    if expires_at is None:
        return None
    return time.monotonic() + max(0.0, expires_at - lead - time.time())


def token_expiring_frame(expires_at: float) -> bytes:
    """The frame telling a client that its stream token expires soon (no
    ``id:`` field): ``expiresInMs`` from now; it should fetch a new token and
    reconnect with it, by its cursor, before then."""
    left = max(0, int((expires_at - time.time()) * 1000))
    return encode(dumps({"type": "token-expiring", "expiresInMs": left}))


# -- A multiplexed response -------------------------------------------------


def parse_cursor(value: str | None, count: int) -> list[str | None] | None:
    """The positions of a combined cursor for ``count`` streams (None for a
    stream without one), all None without a cursor; None if it has the wrong
    number of positions."""
    if value is None or value == "":
        return [None] * count
    positions = value.split(CURSOR_SEPARATOR)
    if len(positions) != count:
        return None
    return [p or None for p in positions]


def format_cursor(positions: list[str | None]) -> str:
    """The combined cursor of per-stream positions (see :func:`parse_cursor`):
    each stream's last event id delivered, in the request's order, empty for
    a stream with none yet."""
    return CURSOR_SEPARATOR.join(p or "" for p in positions)


def multiplexed_hello(stream_ids: list[str], heartbeat: float) -> bytes:
    """The first frame of a multiplexed response (no ``id:``): the streams,
    in the request's order, and the heartbeat interval in milliseconds."""
    hello = {
        "type": "connected",
        "streams": stream_ids,
        "heartbeatMs": int(heartbeat * 1000),
    }
    return encode(dumps(hello))


def multiplexed_envelope(
    event_type: str, stream_id: str, event_id: str | None, data_json: str
) -> str:
    """A single stream's :func:`envelope` plus its ``stream`` and its own
    ``eventId`` in that stream."""
    return (
        '{"type":' + json.dumps(event_type) + ',"stream":' + json.dumps(stream_id)
        + ',"eventId":' + json.dumps(event_id) + ',"data":' + data_json + "}"
    )  # fmt: skip


def multiplexed_frame(
    event_type: str,
    stream_id: str,
    event_id: str | None,
    data_json: str,
    positions: list[str | None],
) -> bytes:
    """One event's frame on a multiplexed response: its
    :func:`multiplexed_envelope`, and as ``id:`` the combined cursor of
    ``positions`` (which already count this event)."""
    data = multiplexed_envelope(event_type, stream_id, event_id, data_json)
    return encode(data, event_id=format_cursor(positions))


def stream_error_frame(
    stream_id: str, error: str, message: str | None, status: int | None
) -> bytes:
    """A multiplexed response's refusal of one of its streams (no ``id:``):
    ``{"type": "error", "stream", "data": {"error", "message", "status"}}``,
    the JSON error and HTTP status a single stream's request would get; the
    other streams go on."""
    data = {"error": error, "message": message, "status": status}
    return encode(dumps({"type": "error", "stream": stream_id, "data": data}))


# -- The dashboard's stream --------------------------------------------------


def dashboard_frame(snapshot: Any) -> bytes:
    """One snapshot of the operations dashboard as an SSE frame (plain
    ``json.dumps``: the page's own script reads it)."""
    return encode(json.dumps(snapshot))


#: The dashboard's frame while Redis is unavailable.
DASHBOARD_UNAVAILABLE = dashboard_frame({"error": "redis_unavailable"})
