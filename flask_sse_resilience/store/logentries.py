"""What the log's scripts and keys hold, read back: log entries, pub/sub
announcements, snapshots, and the errors a write's status stands for."""

from __future__ import annotations

import json
from typing import Any

from ..errors import (
    LogBehindError,
    ProducerConflictError,
    StreamCancelled,
    StreamNotActiveError,
)
from ..models import EntryField, Event
from ..redisio.commands import as_text, hash_to_text
from .scripts import Status, Written


def raise_for(reply: Written, stream_id: str) -> None:
    """Raise the error a write's reply stands for (nothing for a write
    done or acknowledged)."""
    status = reply.status
    if status is Status.CANCELLED:
        request = reply.request_json
        raise StreamCancelled(stream_id, json.loads(request) if request else None)
    if status is Status.CONFLICT:
        raise ProducerConflictError(
            f"another producer has taken over stream {stream_id!r}"
        )
    if status is Status.BEHIND:
        logged = reply.logged
        raise LogBehindError(
            f"the log of stream {stream_id!r} ends at event {logged}, before "
            "events this producer wrote: Redis lost acknowledged writes",
            logged,
        )
    if status in (Status.ENDED, Status.MISSING, Status.NOT_STALE):
        raise StreamNotActiveError(
            f"stream {stream_id!r} "
            + ("does not exist" if status is Status.MISSING else "is not active")
        )


def parse_entry(entry_id: Any, fields: Any) -> Event:
    """Build an :class:`Event` from one ``XRANGE`` entry."""
    values = hash_to_text(fields)
    return Event(
        id=as_text(entry_id),
        seq=int(values[EntryField.SEQ]),
        type=values[EntryField.TYPE],
        data_json=values[EntryField.DATA],
    )


def parse_message(payload: Any) -> list[Event]:
    """The events of one pub/sub announcement (see ``append.lua``): four
    lines each (id, seq, type, data; JSON data holds no newline).

    An announcement without an id is an end notice for a stream that vanished
    (its record expired): it is not in the log, and ends every follower.

    :raises ValueError: for a malformed announcement.
    """
    lines = as_text(payload).split("\n")
    if not lines or len(lines) % 4:
        raise ValueError("an announcement has four lines per event")
    return [
        Event(id=lines[i] or None, seq=int(lines[i + 1]), type=lines[i + 2],
              data_json=lines[i + 3])
        for i in range(0, len(lines), 4)
    ]  # fmt: skip


def parse_snapshot(value: Any) -> Event | None:
    """The ``snapshot`` event a late joiner starts from (its id: the last
    event it covers), from the snapshot key's value; None without one."""
    if value is None:
        return None
    seq, event_id, data = as_text(value).split("\n", 2)
    return Event(id=event_id or None, seq=int(seq), type="snapshot", data_json=data)
