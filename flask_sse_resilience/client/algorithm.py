"""What the sync and asyncio Python clients share: the event value, errors,
backoff, and reading the protocol's frames and answers (docs/protocol.rst).
Nothing here does I/O."""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import random
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import httpx
from httpx_sse import ServerSentEvent

_TERMINAL = {"completed", "failed", "orphaned", "cancelled"}

#: A token source: returns a fresh stream token (or None for none), called
#: before every (re)connect and once more on a 401. The asyncio client also
#: takes a coroutine function.
TokenSource = Callable[[], "str | None | Awaitable[str | None]"]


@dataclasses.dataclass(frozen=True)
class ClientEvent:
    """One event of a followed stream."""

    id: str | None
    type: str
    data: Any

    @property
    def terminal(self) -> bool:
        """True for the stream's last event."""
        return self.type in _TERMINAL


class StreamUnavailable(Exception):
    """The stream cannot be followed: 401/403/404, or the retries ran out.

    When the retries ran out, the message ends with why the last attempt
    failed (``ConnectError: [Errno 111] Connection refused``, ``HTTP 503
    redis_unavailable``), which is also its ``__cause__`` and
    :attr:`last_error`.
    """

    def __init__(
        self,
        message: str,
        status_code: int | None = None,
        last_error: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        #: The refusing status (401, 403, 404), or the last attempt's error
        #: status when the retries ran out (say, 503); else None.
        self.status_code = status_code
        #: The last attempt's error (an ``httpx`` exception) when the retries
        #: ran out; None if the server had ended its response early.
        self.last_error = last_error


def backoff_delay(
    attempt: int,
    base: float,
    cap: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Full-jitter backoff: uniform in ``[0, min(cap, base * 2**attempt)]`` s."""
    return float(rand() * min(cap, base * 2.0 ** max(0, attempt)))


def refused(url: str, status_code: int) -> StreamUnavailable | None:
    """The error for a status that ends following for good, else None."""
    if status_code in (401, 403, 404):
        return StreamUnavailable(f"{url}: {status_code}", status_code=status_code)
    return None


def check(url: str, response: httpx.Response) -> None:
    """Raise for a refused answer: :class:`StreamUnavailable` for 401/403/404,
    ``httpx.HTTPStatusError`` for another error status."""
    error = refused(url, response.status_code)
    if error is not None:
        raise error
    response.raise_for_status()


def terminal_of(body: dict[str, Any]) -> ClientEvent | None:
    """The terminal event in a recover (or key) answer, if the stream ended."""
    if body.get("status") not in _TERMINAL:
        return None
    return ClientEvent(
        id=body.get("eventId"),
        type=body["terminalEventType"],
        data=body.get("terminalEventData"),
    )


def with_params(url: str, **params: str | None) -> str:
    """``url`` with the parameters that have a value added to its query."""
    given = {k: v for k, v in params.items() if v}
    if not given:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode(given)}"


def sub_resource(url: str, what: str) -> str:
    """``<stream url>/<what>`` (``recover``, ``cancel``), keeping its query."""
    path, mark, query = url.partition("?")
    return f"{path.rstrip('/')}/{what}{mark}{query}"


def stream_target(
    url: str, last_event_id: str | None, start_from: str, token: str | None
) -> str:
    """The URL to connect to: the ``from`` parameter only without a cursor
    (``snapshot`` is the server's default), and the token if any."""
    start = None if last_event_id or start_from == "snapshot" else start_from
    return with_params(url, **{"from": start, "token": token})


#: What :func:`read_frame` returns besides events: the ``connected`` frame,
#: a ``token-expiring`` notice, and frames to skip; and what a connection
#: yields for a 204 (the client has the terminal event already).
ACCEPTED = ClientEvent(id=None, type="connected", data=None)
EXPIRING = ClientEvent(id=None, type="token-expiring", data=None)
SKIP = ClientEvent(id=None, type="", data=None)
HAVE_ALL = ClientEvent(id=None, type="", data=None)


class Step(enum.Enum):
    """What a follow loop does with a frame (see :meth:`Resumption.take`)."""

    DELIVER = "deliver"  # yield the event (and return after a terminal one)
    SKIP = "skip"
    DONE = "done"  # return: the client has everything
    SWAP = "swap"  # leave this connection, reconnect at once with a new token


class Resumption:
    """The client algorithm of docs/protocol.rst for one followed stream,
    without I/O: the sync and asyncio clients run their loops around it."""

    def __init__(
        self,
        url: str,
        last_event_id: str | None,
        *,
        tokens: bool,
        max_attempts: int,
        base_delay: float,
        max_delay: float,
    ) -> None:
        self.url = url
        #: The cursor: the id of the last event delivered.
        self.last_event_id = last_event_id
        self.tokens = tokens
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.attempts = 0
        self._fresh = False  # a fresh token was fetched for a 401 already
        self._now = False  # reconnect without waiting
        #: Why the last connection failed: an httpx error, or None when the
        #: server ended the response before the stream ended.
        self.last_error: BaseException | None = None

    def take(self, event: ClientEvent) -> Step:
        """Account for one frame of a connection; say what to do with it."""
        if event is ACCEPTED:
            self.attempts, self._fresh = 0, False  # the server accepted it
            return Step.SKIP
        if event is HAVE_ALL:
            return Step.DONE
        if event is EXPIRING:
            self._now = self.tokens
            return Step.SWAP if self.tokens else Step.SKIP
        if event is SKIP:
            return Step.SKIP
        if event.id:
            self.last_event_id = event.id
        return Step.DELIVER

    def refused(self, error: StreamUnavailable) -> None:
        """A 401, 403 or 404: re-raise it, unless it is the first 401 since
        the last accepted connection and a token source can give a new one."""
        if error.status_code != 401 or not self.tokens or self._fresh:
            raise error
        self._fresh = self._now = True

    def failed(self, error: BaseException | None) -> None:
        """A connection failed with ``error`` (a transport error or an error
        status), or ended early (None); the next :meth:`pause` decides."""
        self.last_error = error

    def pause(self) -> float:
        """Seconds to wait before the next connection (0: at once).

        :raises StreamUnavailable: when the attempts in a row ran out.
        """
        if self._now:
            self._now = False
            return 0.0
        if self.attempts >= self.max_attempts:
            error = self.last_error
            status = None
            if isinstance(error, httpx.HTTPStatusError):
                status = error.response.status_code
            raise StreamUnavailable(
                f"{self.url}: gave up after {self.attempts} attempts; the last "
                f"one: {describe_failure(error)}",
                status_code=status,
                last_error=error,
            ) from error
        delay = backoff_delay(self.attempts, self.base_delay, self.max_delay)
        self.attempts += 1
        return delay


def describe_failure(error: BaseException | None) -> str:
    """What a failed connection says in :class:`StreamUnavailable`:
    ``ConnectError: [Errno 111] Connection refused``, ``HTTP 503
    redis_unavailable`` (the error code of the protocol's JSON body), or that
    the server ended the response early."""
    if error is None:
        return "the server ended the response before the stream ended"
    if isinstance(error, httpx.HTTPStatusError):
        response = error.response
        code = response.reason_phrase
        try:
            body = response.json()
        except (ValueError, httpx.ResponseNotRead):
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            code = body["error"]
        return f"HTTP {response.status_code} {code}".rstrip()
    text = f"{type(error).__name__}: {error}".strip().rstrip(":")
    root = _os_error(error)
    if root is not None and os.strerror(root) not in text:
        # asyncio's httpx says "All connection attempts failed" and keeps the
        # reason (refused, unreachable...) in the chain of causes.
        text += f" ([Errno {root}] {os.strerror(root)})"
    return text


def _os_error(error: BaseException) -> int | None:
    """The errno of the innermost ``OSError`` among ``error``'s causes."""
    found = None
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno:
            found = current.errno
        current = current.__cause__ or current.__context__
    return found


def read_frame(sse: ServerSentEvent) -> ClientEvent:
    """One SSE frame of a stream response, as an event or a marker."""
    if sse.event != "message" or not sse.data:
        return SKIP  # heartbeats and other named events
    envelope = json.loads(sse.data)
    kind = envelope.get("type")
    if kind == "connected":
        return ACCEPTED
    if kind == "token-expiring":
        return EXPIRING
    # Frames without an id keep the previous one in the SSE decoder's state.
    event_id = None if kind == "reset" else (sse.id or None)
    return ClientEvent(id=event_id, type=kind, data=envelope.get("data"))
