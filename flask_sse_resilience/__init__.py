"""Server-Sent Events for Flask that survive dropped clients, dead workers and
lost results.

The names below are imported on first use (PEP 562), so importing a
submodule alone, as a gunicorn config file does with
:mod:`flask_sse_resilience.gunicorn`, pulls in nothing else (no Redis client,
nothing gevent must patch first).

``__version__`` is the installed distribution's version, read from its
metadata (:func:`importlib.metadata.version`) on first use, so it never
disagrees with what pip installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    __version__: str

    from .errors import (
        AuthenticationRequired,
        ConfigurationError,
        ConfigurationWarning,
        ConnectionLimitExceeded,
        InvalidEventError,
        InvalidLastEventId,
        InvalidStreamId,
        InvalidStreamToken,
        ProducerConflictError,
        RedisOutOfMemory,
        RedisUnavailable,
        SSEResilienceError,
        StoreError,
        StreamCancelled,
        StreamIdTaken,
        StreamKeyTaken,
        StreamLimitExceeded,
        StreamNotActiveError,
        StreamNotFound,
    )
    from .extension import SSEResilience
    from .models import (
        CompletionData,
        Event,
        Retention,
        StreamId,
        StreamMetadata,
        StreamState,
    )
    from .produce.producer import Producer
    from .produce.snapshots import AutoSnapshot

_HOMES = {
    "SSEResilience": "extension",
    "Producer": "produce.producer",
    "AutoSnapshot": "produce.snapshots",
    **dict.fromkeys(
        (
            "CompletionData",
            "Event",
            "Retention",
            "StreamId",
            "StreamMetadata",
            "StreamState",
        ),
        "models",
    ),  # fmt: skip
    **dict.fromkeys(
        (
            "AuthenticationRequired",
            "ConfigurationError",
            "ConfigurationWarning",
            "ConnectionLimitExceeded",
            "InvalidEventError",
            "InvalidLastEventId",
            "InvalidStreamId",
            "InvalidStreamToken",
            "ProducerConflictError",
            "RedisOutOfMemory",
            "RedisUnavailable",
            "SSEResilienceError",
            "StoreError",
            "StreamCancelled",
            "StreamIdTaken",
            "StreamKeyTaken",
            "StreamLimitExceeded",
            "StreamNotActiveError",
            "StreamNotFound",
        ),
        "errors",
    ),  # fmt: skip
}

__all__ = [
    "AuthenticationRequired",
    "AutoSnapshot",
    "CompletionData",
    "ConfigurationError",
    "ConfigurationWarning",
    "ConnectionLimitExceeded",
    "Event",
    "InvalidEventError",
    "InvalidLastEventId",
    "InvalidStreamId",
    "InvalidStreamToken",
    "Producer",
    "ProducerConflictError",
    "RedisOutOfMemory",
    "RedisUnavailable",
    "Retention",
    "SSEResilience",
    "SSEResilienceError",
    "StoreError",
    "StreamCancelled",
    "StreamId",
    "StreamIdTaken",
    "StreamKeyTaken",
    "StreamLimitExceeded",
    "StreamMetadata",
    "StreamNotActiveError",
    "StreamNotFound",
    "StreamState",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        globals()[name] = found = version("flask-sse-resilience")
        return found
    home = _HOMES.get(name)
    if home is None:
        # A submodule, as ``flask_sse_resilience.signals`` was before.
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise  # the submodule exists; something it imports does not
            raise AttributeError(
                f"module {__name__!r} has no attribute {name!r}"
            ) from None
    if home != "errors":
        from .preflight import patch_gevent_master

        patch_gevent_master()
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES, "__version__"})
