"""The Python client for asyncio (httpx's ``AsyncClient``), with the same
semantics as :mod:`flask_sse_resilience.client` (recover first, resume by id,
backoff with full jitter, the token hook, cancel, keys)::

    async with httpx.AsyncClient(base_url="https://app.example") as http:
        async for event in afollow("/sse/streams/abc", client=http):
            print(event.type, event.data)

Import it from :mod:`flask_sse_resilience.client`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from .algorithm import (
    HAVE_ALL,
    ClientEvent,
    Resumption,
    Step,
    StreamUnavailable,
    TokenSource,
    check,
    read_frame,
    refused,
    stream_target,
    sub_resource,
    terminal_of,
    with_params,
)

log = logging.getLogger(__name__)


async def _token(get_token: TokenSource | None) -> str | None:
    if get_token is None:
        return None
    token = get_token()
    if inspect.isawaitable(token):
        token = await token
    return token


async def acancel(
    url: str,
    *,
    client: httpx.AsyncClient,
    reason: str | None = None,
    get_token: TokenSource | None = None,
) -> dict[str, Any]:
    """Ask the stream at ``url`` to stop; see
    :func:`~flask_sse_resilience.client.cancel`.

    :raises StreamUnavailable: on 401/403/404.
    :raises httpx.HTTPStatusError: on another error status (503: retry).
    """
    body = {} if reason is None else {"reason": reason}
    target = with_params(sub_resource(url, "cancel"), token=await _token(get_token))
    response = await client.post(target, json=body)
    if response.status_code != 409:
        check(url, response)
    answer: dict[str, Any] = response.json()
    return answer


async def afind_key(
    key: str, *, client: httpx.AsyncClient, prefix: str = "/sse"
) -> dict[str, Any] | None:
    """The signed-in user's latest stream of ``key``, or None; as
    :func:`~flask_sse_resilience.client.find_key`.

    :raises StreamUnavailable: on 401/403/404.
    """
    response = await client.get(f"{prefix.rstrip('/')}/keys/{key}")
    if response.status_code == 204:
        return None
    check(key, response)
    found: dict[str, Any] = response.json()
    return found


async def afollow_key(
    key: str, *, client: httpx.AsyncClient, prefix: str = "/sse", **options: Any
) -> AsyncIterator[ClientEvent]:
    """Find the latest stream of ``key`` and yield its events, as
    :func:`afollow` does; as :func:`~flask_sse_resilience.client.follow_key`."""
    found = await afind_key(key, client=client, prefix=prefix)
    if found is None:
        return
    terminal = terminal_of(found)
    if terminal is not None:
        yield terminal
        return
    url = f"{prefix.rstrip('/')}/streams/{found['streamId']}"
    async for event in afollow(url, client=client, **options):
        yield event


async def afollow(
    url: str,
    *,
    client: httpx.AsyncClient | None = None,
    last_event_id: str | None = None,
    base_delay: float = 0.5,
    max_delay: float = 15.0,
    max_attempts: int = 12,
    read_timeout: float = 60.0,
    start_from: str = "snapshot",
    get_token: TokenSource | None = None,
) -> AsyncIterator[ClientEvent]:
    """Yield the stream's events from after ``last_event_id`` to its end;
    the parameters and errors are those of
    :func:`~flask_sse_resilience.client.follow` (``get_token`` may be a
    coroutine function). To stop early, close it (``contextlib.aclosing``),
    which closes its connection."""
    own = client is None
    http = client or httpx.AsyncClient()
    state = Resumption(url, last_event_id, tokens=get_token is not None,
                   max_attempts=max_attempts, base_delay=base_delay,
                   max_delay=max_delay)  # fmt: skip
    try:
        while True:
            try:
                token = await _token(get_token)
                if state.last_event_id is None:
                    recover = with_params(sub_resource(url, "recover"), token=token)
                    response = await http.get(recover)
                    check(url, response)
                    terminal = terminal_of(response.json())
                    if terminal is not None:
                        yield terminal
                        return
                target = stream_target(url, state.last_event_id, start_from, token)
                # aclosing: leaving the loop early closes the connection now.
                frames = _aconnect(http, target, state.last_event_id, read_timeout)
                async with contextlib.aclosing(frames):
                    async for event in frames:
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
            await asyncio.sleep(state.pause())
    finally:
        if own:
            await http.aclose()


async def _aconnect(
    http: httpx.AsyncClient, url: str, last_event_id: str | None, read_timeout: float
) -> AsyncGenerator[ClientEvent, None]:
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    timeout = httpx.Timeout(10.0, read=read_timeout)
    async with aconnect_sse(
        http, "GET", url, headers=headers, timeout=timeout
    ) as source:
        error = refused(url, source.response.status_code)
        if error is not None:
            raise error
        if source.response.status_code == 204:
            yield HAVE_ALL
            return
        if source.response.is_error:
            await source.response.aread()  # its JSON error, for StreamUnavailable
        source.response.raise_for_status()
        async for sse in source.aiter_sse():
            yield read_frame(sse)
