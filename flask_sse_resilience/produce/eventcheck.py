"""What a producer may send (event types and data) and what a stream may
carry (``open_stream``'s metadata), checked before anything is written: a bad
event raises :class:`~flask_sse_resilience.errors.InvalidEventError` and
leaves the stream as it was; bad metadata, a ``ValueError`` before the stream
exists. Both say which value, under which key, is at fault."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .. import wire
from ..errors import InvalidEventError
from ..models import TERMINAL_TYPES

_EVENT_TYPE = re.compile(r"[^\x00-\x1f\x7f]{1,64}")

#: Types the extension itself sends; producers cannot use them with ``send``.
RESERVED_TYPES = TERMINAL_TYPES | {"connected", "reset", "snapshot"}


def check_event_type(event_type: Any) -> str:
    """Return ``event_type`` if a producer may send it: 1-64 characters, no
    control characters, not one of :data:`RESERVED_TYPES`.

    :raises InvalidEventError: naming what is wrong.
    """
    if not isinstance(event_type, str) or not _EVENT_TYPE.fullmatch(event_type):
        raise InvalidEventError(
            f"event type must be 1-64 characters without control characters, "
            f"got {event_type!r}"
        )
    if event_type in RESERVED_TYPES:
        raise InvalidEventError(
            f"event type {event_type!r} is reserved; use complete(), fail(), "
            "cancel() or snapshot()"
        )
    return event_type


def serialize(data: Any, max_bytes: int) -> str:
    """Return ``data`` as JSON text, or raise :class:`InvalidEventError`
    (not JSON-serializable, or over ``max_bytes`` once serialized)."""
    try:
        text = wire.dumps(data)
    except (TypeError, ValueError) as exc:
        raise InvalidEventError(
            f"event data is not JSON-serializable: {_fault('data', data, exc)}"
        ) from exc
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise InvalidEventError(
            f"event data is {size} bytes, over the limit of {max_bytes} "
            "(SSE_RESILIENCE_MAX_EVENT_BYTES)"
        )
    return text


def _fault(name: str, value: Any, exc: Exception, *, allow_nan: bool = False) -> str:
    """What in ``value`` (called ``name``) is not JSON, else what ``json``
    said."""
    return wire.json_fault(value, name, allow_nan=allow_nan) or str(exc)


def check_metadata(metadata: Any) -> None:
    """Refuse ``open_stream`` metadata that cannot be stored as JSON.

    :raises ValueError: naming the metadata, the key and the type at fault.
    """
    if metadata is None:
        return
    if not isinstance(metadata, Mapping):
        raise ValueError(
            f"metadata must be a dict of JSON values, not a {type(metadata).__name__}"
        )
    try:
        json.dumps(dict(metadata))
    except (TypeError, ValueError) as exc:
        fault = _fault("metadata", dict(metadata), exc, allow_nan=True)
        raise ValueError(f"stream metadata must be JSON-serializable: {fault}") from exc
