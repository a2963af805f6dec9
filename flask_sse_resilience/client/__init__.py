"""The Python client: follows streams from other services, as the browser
client does (``pip install 'flask-sse-resilience[client]'``; built on httpx
and httpx-sse).

The consumer of the protocol (docs/protocol.rst):
:mod:`~flask_sse_resilience.client.algorithm` is the client algorithm without
I/O (the cursor, backoff, tokens, the answers it stops on), run by the sync
loop in :mod:`~flask_sse_resilience.client.sync` and the asyncio one in
:mod:`~flask_sse_resilience.client.aio`. May import nothing of the package
outside this folder: a service that only follows streams loads none of the
server (no Redis client, no Flask extension). Every public name is here::

    from flask_sse_resilience.client import follow, afollow, cancel
"""

from __future__ import annotations

try:
    import httpx  # noqa: F401
    import httpx_sse  # noqa: F401
except ImportError as exc:  # installed without its extra
    raise ModuleNotFoundError(
        f"The Python client (flask_sse_resilience.client) needs {exc.name}, "
        "which is not installed: pip install 'flask-sse-resilience[client]'",
        name=exc.name,
    ) from exc

from .aio import acancel, afind_key, afollow, afollow_key
from .algorithm import ClientEvent, StreamUnavailable, backoff_delay
from .sync import cancel, find_key, follow, follow_key

__all__ = [
    "ClientEvent",
    "StreamUnavailable",
    "acancel",
    "afind_key",
    "afollow",
    "afollow_key",
    "backoff_delay",
    "cancel",
    "find_key",
    "follow",
    "follow_key",
]
