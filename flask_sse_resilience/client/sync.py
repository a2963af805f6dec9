"""The Python client's sync loop, on httpx's ``Client`` (import it from
:mod:`flask_sse_resilience.client`).

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
and follows it, as a reloaded page does. ``get_token`` (a callable returning a
stream token) is asked before every (re)connect, once more on a 401, and when
the server says the token expires soon (``token-expiring``): the client then
reconnects at once with the fresh one, so a stream outlives its token.

The same functions for asyncio (httpx's ``AsyncClient``), with the same
semantics, are :func:`afollow`, :func:`afollow_key`, :func:`acancel` and
:func:`afind_key` (in :mod:`flask_sse_resilience.client.aio`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from httpx_sse import connect_sse

from .algorithm import (
    HAVE_ALL,
    ClientEvent,
    Resumption,
    Step,
    StreamUnavailable,
    check,
    read_frame,
    refused,
    stream_target,
    sub_resource,
    terminal_of,
    with_params,
)

__all__ = ["cancel", "find_key", "follow", "follow_key"]

log = logging.getLogger(__name__)

#: A sync token source (see :data:`~flask_sse_resilience.client.algorithm.TokenSource`).
GetToken = Callable[[], "str | None"]


def _recover(client: httpx.Client, url: str, token: str | None) -> ClientEvent | None:
    response = client.get(with_params(sub_resource(url, "recover"), token=token))
    check(url, response)
    return terminal_of(response.json())


def cancel(
    url: str,
    *,
    client: httpx.Client,
    reason: str | None = None,
    get_token: GetToken | None = None,
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
    token = get_token() if get_token else None
    response = client.post(
        with_params(sub_resource(url, "cancel"), token=token), json=body
    )
    if response.status_code != 409:
        check(url, response)
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
    check(key, response)
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
    terminal = terminal_of(found)
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
    get_token: GetToken | None = None,
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
    :param get_token: returns a stream token; asked before every (re)connect,
        once more on a 401, and on ``token-expiring`` (then reconnects at once).
    :raises StreamUnavailable: on 401/403/404 (a 401 after a fresh token too),
        or when retries run out.
    """
    own = client is None
    http = client or httpx.Client()
    state = Resumption(url, last_event_id, tokens=get_token is not None,
                   max_attempts=max_attempts, base_delay=base_delay,
                   max_delay=max_delay)  # fmt: skip
    try:
        while True:
            try:
                token = get_token() if get_token else None
                # Only a client with nothing yet takes the shortcut: one that
                # resumes gets the rest of the log, which ends with the end.
                if state.last_event_id is None:
                    terminal = _recover(http, url, token)
                    if terminal is not None:
                        yield terminal
                        return
                target = stream_target(url, state.last_event_id, start_from, token)
                for event in _connect(http, target, state.last_event_id, read_timeout):
                    step = state.take(event)
                    if step is Step.DELIVER:
                        yield event
                        if event.terminal:
                            return
                    elif step is Step.DONE:
                        return
                    elif step is Step.SWAP:
                        break
            except StreamUnavailable as exc:
                state.refused(exc)
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                log.info("stream %s interrupted: %s", url, exc)
                state.failed(exc)
            else:  # the response ended before the stream did (or a swap)
                state.failed(None)
            time.sleep(state.pause())
    finally:
        if own:
            http.close()


def _connect(
    http: httpx.Client, url: str, last_event_id: str | None, read_timeout: float
) -> Iterator[ClientEvent]:
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    timeout = httpx.Timeout(10.0, read=read_timeout)
    with connect_sse(http, "GET", url, headers=headers, timeout=timeout) as source:
        error = refused(url, source.response.status_code)
        if error is not None:
            raise error
        if source.response.status_code == 204:
            yield HAVE_ALL  # we already have the terminal event
            return
        if source.response.is_error:
            source.response.read()  # its JSON error, for StreamUnavailable
        source.response.raise_for_status()
        for sse in source.iter_sse():
            yield read_frame(sse)
