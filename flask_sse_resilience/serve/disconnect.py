"""Noticing that a client left, without waiting for a write to fail.

With gunicorn's gevent worker the first write into a socket whose peer has
closed still succeeds, so a write-only server learns that a quiet client left
only a heartbeat or two later. Instead, a read watcher on the gevent hub waits
for the client socket to become readable: an SSE client never sends anything
after its request, so readable means EOF (or an error), and the connection is
released at once.

A client that vanishes without closing (half-open TCP) never makes the socket
readable; for that, ``TCP_USER_TIMEOUT`` makes the kernel drop the connection
once a keep-alive write stays unacknowledged for half a heartbeat interval,
which the watcher then sees: released within two heartbeat intervals.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any, Protocol

from ..redisio.loops import gevent_patched

log = logging.getLogger(__name__)


class HangupListener(Protocol):
    """A listener for the client's hang-up; :meth:`cancel` stops it."""

    def cancel(self) -> None:
        """Stop listening (idempotent)."""


class _NoListener:
    def cancel(self) -> None:
        pass


class _GeventListener:
    """A libev read watcher on the client socket, run by the gevent hub: no
    greenlet (and no stack) per connection, just a small C watcher."""

    def __init__(self, sock: socket.socket, on_close: Callable[[], None]) -> None:
        import gevent

        self._sock = sock
        self._on_close = on_close
        self._watcher = gevent.get_hub().loop.io(sock.fileno(), 1)
        self._watcher.start(self._readable)

    def _readable(self) -> None:
        self._watcher.stop()
        try:
            flags = socket.MSG_PEEK | socket.MSG_DONTWAIT
            closed = self._sock.recv(1, flags) == b""
        except BlockingIOError:
            closed = False
        except OSError:
            closed = True  # reset, or dropped by TCP_USER_TIMEOUT
        if closed:
            self._on_close()
        # Otherwise the client sent bytes (a pipelined request): stop watching
        # and leave it to failing writes.

    def cancel(self) -> None:
        self._watcher.stop()
        self._watcher.close()


def listen_for_hangup(
    sock: Any, on_close: Callable[[], None], timeout_ms: int
) -> HangupListener:
    """Call ``on_close`` once the client socket ``sock`` closes.

    Works under gevent (gunicorn's gevent worker passes the socket as
    ``environ["gunicorn.socket"]``) on plain TCP; elsewhere (no gevent, or
    TLS terminated by gunicorn itself) it watches nothing and the connection
    is released when a write fails, as usual.
    """
    if not isinstance(sock, socket.socket) or not gevent_patched("socket"):
        return _NoListener()
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, timeout_ms)
    except (OSError, AttributeError):  # not Linux, or not TCP
        log.debug("TCP_USER_TIMEOUT not set", exc_info=True)
    if isinstance(sock, ssl.SSLSocket):
        # TLS (gunicorn --certfile): a TLS socket cannot peek, and a readable
        # one may hold a record rather than EOF; failing writes tell instead.
        return _NoListener()
    return _GeventListener(sock, on_close)
