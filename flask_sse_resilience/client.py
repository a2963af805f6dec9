"""A Python client for services that consume streams (``pip install
flask-sse-resilience[client]``; built on httpx and httpx-sse).

::

    import httpx
    from flask_sse_resilience.client import follow

    with httpx.Client(base_url="https://app.example", cookies=...) as http:
        for event in follow("/sse/streams/abc", client=http):
            print(event.type, event.data)      # ends after the terminal event

It follows the client algorithm of the protocol page (docs/protocol.rst), as
the browser client does. Without a ``last_event_id`` it asks ``/recover`` first
(an ended stream yields its terminal event without connecting); then it follows
the stream, and on any disconnect reconnects with exponential backoff and full
jitter, sending ``Last-Event-ID``, so every event arrives once. The attempt
count restarts whenever the server accepts a connection. A ``reset`` event (the
server's log no longer held our position) is passed on: drop what you built
and start over from the events after it. A ``snapshot`` event (a late joiner
of a stream whose producer keeps snapshots) stands for every event before it:
replace what you built with its data.

:func:`cancel` asks a stream to stop (``POST <url>/cancel``); :func:`follow_key`
finds the signed-in user's latest stream of a key (``GET <prefix>/keys/<key>``)
and follows it, as a reloaded page does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from httpx_sse import connect_sse

log = logging.getLogger(__name__)

_TERMINAL = {"completed", "failed", "orphaned", "cancelled"}


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
    """The stream cannot be followed: 401/403/404, or the retries ran out."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def backoff_delay(
    attempt: int,
    base: float,
    cap: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Full-jitter backoff: uniform in ``[0, min(cap, base * 2**attempt)]`` s."""
    return float(rand() * min(cap, base * 2.0 ** max(0, attempt)))


def _refused(url: str, response: httpx.Response) -> None:
    if response.status_code in (401, 403, 404):
        raise StreamUnavailable(
            f"{url}: {response.status_code}", status_code=response.status_code
        )
    response.raise_for_status()


def _terminal(body: dict[str, Any]) -> ClientEvent | None:
    """The terminal event in a recover (or key) answer, if the stream ended."""
    if body.get("status") not in _TERMINAL:
        return None
    return ClientEvent(
        id=body.get("eventId"),
        type=body["terminalEventType"],
        data=body.get("terminalEventData"),
    )


def _recover(client: httpx.Client, url: str) -> ClientEvent | None:
    response = client.get(url.rstrip("/") + "/recover")
    _refused(url, response)
    return _terminal(response.json())


def cancel(
    url: str, *, client: httpx.Client, reason: str | None = None
) -> dict[str, Any]:
    """Ask the stream at ``url`` to stop; return the server's JSON answer:
    ``{"status": "cancelling"}`` (202), the recover JSON of a stream that
    ended cancelled (200), or, for one that ended otherwise (409), its
    ``status``. Not :meth:`close`-like: the stream's producer stops, and every
    follower receives the ``cancelled`` event.

    :raises StreamUnavailable: on 401/403/404.
    :raises httpx.HTTPStatusError: on another error status (503: retry).
    """
    body = {} if reason is None else {"reason": reason}
    response = client.post(url.rstrip("/") + "/cancel", json=body)
    if response.status_code != 409:
        _refused(url, response)
    answer: dict[str, Any] = response.json()
    return answer


def find_key(
    key: str, *, client: httpx.Client, prefix: str = "/sse"
) -> dict[str, Any] | None:
    """The signed-in user's latest stream of ``key`` (its recover JSON, with
    ``streamId``), or None when there is none.

    :raises StreamUnavailable: on 401/403/404.
    """
    response = client.get(f"{prefix.rstrip('/')}/keys/{key}")
    if response.status_code == 204:
        return None
    _refused(key, response)
    found: dict[str, Any] = response.json()
    return found


def follow_key(
    key: str, *, client: httpx.Client, prefix: str = "/sse", **options: Any
) -> Iterator[ClientEvent]:
    """Find the latest stream of ``key`` and yield its events, as
    :func:`follow` does (an ended one yields its terminal event at once;
    none yields nothing). ``options`` go to :func:`follow`."""
    found = find_key(key, client=client, prefix=prefix)
    if found is None:
        return
    terminal = _terminal(found)
    if terminal is not None:
        yield terminal
        return
    url = f"{prefix.rstrip('/')}/streams/{found['streamId']}"
    yield from follow(url, client=client, **options)


def follow(
    url: str,
    *,
    client: httpx.Client | None = None,
    last_event_id: str | None = None,
    base_delay: float = 0.5,
    max_delay: float = 15.0,
    max_attempts: int = 12,
    read_timeout: float = 60.0,
    start_from: str = "snapshot",
) -> Iterator[ClientEvent]:
    """Yield the stream's events from after ``last_event_id`` to its end.

    :param url: the stream URL (absolute, or relative to ``client.base_url``).
    :param client: an ``httpx.Client`` carrying the app's cookies or auth; a
        new one is made (and closed) when omitted.
    :param last_event_id: resume after this event id.
    :param max_attempts: reconnects in a row without the server accepting a
        connection (its ``connected`` frame) before giving up with
        :class:`StreamUnavailable`.
    :param read_timeout: seconds of silence before the connection is deemed
        dead; keep it above the server's heartbeat interval.
    :param start_from: where to start without a cursor (the ``from`` query
        parameter): ``snapshot`` (the latest snapshot, else the whole log),
        ``start`` (the whole log) or ``latest`` (only what comes next).
    :raises StreamUnavailable: on 401/403/404, or when retries run out.
    """
    own = client is None
    http = client or httpx.Client()
    attempts = 0
    try:
        while True:
            try:
                # Only a client with nothing yet takes the shortcut: one that
                # resumes gets the rest of the log, which ends with the end.
                terminal = _recover(http, url) if last_event_id is None else None
                if terminal is not None:
                    yield terminal
                    return
                target = url if last_event_id else _with_from(url, start_from)
                for event in _connect(http, target, last_event_id, read_timeout):
                    if event is _ACCEPTED:
                        attempts = 0  # the server accepted this connection
                        continue
                    if event is _HAVE_ALL:
                        return
                    if event.id:
                        last_event_id = event.id
                    yield event
                    if event.terminal:
                        return
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                log.info("stream %s interrupted: %s", url, exc)
            if attempts >= max_attempts:
                raise StreamUnavailable(f"{url}: gave up after {attempts} attempts")
            time.sleep(backoff_delay(attempts, base_delay, max_delay))
            attempts += 1
    finally:
        if own:
            http.close()


def _with_from(url: str, start_from: str) -> str:
    if start_from == "snapshot":
        return url  # the server's default
    return f"{url}{'&' if '?' in url else '?'}from={start_from}"


#: Yielded by :func:`_connect` (never to callers) for the ``connected``
#: frame, and for a 204 (this client has the terminal event already).
_ACCEPTED = ClientEvent(id=None, type="connected", data=None)
_HAVE_ALL = ClientEvent(id=None, type="", data=None)


def _connect(
    http: httpx.Client, url: str, last_event_id: str | None, read_timeout: float
) -> Iterator[ClientEvent]:
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    timeout = httpx.Timeout(10.0, read=read_timeout)
    with connect_sse(http, "GET", url, headers=headers, timeout=timeout) as source:
        if source.response.status_code in (401, 403, 404):
            raise StreamUnavailable(
                f"{url}: {source.response.status_code}",
                status_code=source.response.status_code,
            )
        if source.response.status_code == 204:
            yield _HAVE_ALL  # we already have the terminal event
            return
        source.response.raise_for_status()
        for sse in source.iter_sse():
            if sse.event != "message" or not sse.data:
                continue  # heartbeats and other named events
            envelope = json.loads(sse.data)
            if envelope.get("type") == "connected":
                yield _ACCEPTED
                continue
            yield ClientEvent(
                id=sse.id or None, type=envelope["type"], data=envelope.get("data")
            )
