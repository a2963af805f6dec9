"""An SSE parser that is not ours: httpx-sse's spec decoder, fed raw bytes."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from typing import Any

from httpx_sse import ServerSentEvent
from httpx_sse._decoders import SSEDecoder, SSELineDecoder


def parse(chunks: Iterable[bytes]) -> Iterator[ServerSentEvent]:
    """Yield the events in a byte stream, as a browser would dispatch them."""
    text = codecs.getincrementaldecoder("utf-8")()
    lines = SSELineDecoder()
    decoder = SSEDecoder()
    for chunk in chunks:
        decoded = text.decode(chunk)
        if not decoded:
            continue
        for line in lines.decode(decoded):
            event = decoder.decode(line)
            if event is not None:
                yield event
    for line in lines.flush():
        event = decoder.decode(line)
        if event is not None:
            yield event


def envelope(event: ServerSentEvent) -> dict[str, Any]:
    """The JSON envelope carried in an event's data."""
    value = json.loads(event.data)
    assert isinstance(value, dict)
    return value


def comments(raw: bytes) -> list[str]:
    """Comment lines in a raw stream (keep-alives)."""
    return [line for line in raw.decode().split("\n") if line.startswith(":")]
