"""Value objects: stream state, registry records, completions and events."""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Literal, get_args

from . import wire
from .ids import is_valid_stream_id


class StreamState(str, enum.Enum):
    """Where a stream is in its life: ``active`` until one terminal state."""

    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    ORPHANED = "orphaned"
    #: Stopped on request (a user, the app, abandoned, or superseded by a
    #: newer stream of the same key); see the "Stopping and resuming" page.
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        """True for every state but ``active``."""
        return self is not StreamState.ACTIVE


#: Event types that end a stream; producers cannot send them with ``send``.
TERMINAL_TYPES = frozenset({"completed", "failed", "orphaned", "cancelled"})

#: Who asked a stream to stop, as the ``by`` of its ``cancelled`` event.
CANCELLERS = ("user", "app", "abandoned", "superseded")


#: What a keyed open does when the owner has an active stream with the key.
OnConflict = Literal["reject", "cancel", "join"]

#: Where a client without a cursor starts (the ``from`` query parameter):
#: the latest snapshot if there is one, else the start of the log
#: (``snapshot``, the default); the start of the log (``start``); or only
#: the events that come next (``latest``).
StartFrom = Literal["snapshot", "start", "latest"]

START_FROM: tuple[StartFrom, ...] = ("snapshot", "start", "latest")
ON_CONFLICT: tuple[OnConflict, ...] = get_args(OnConflict)


def check_key(key: object, on_conflict: object, stream_id: str | None) -> None:
    """Validate ``open_stream``'s ``key`` and ``on_conflict``.

    :raises ValueError: for a key that is not a valid stream id (1-128
        characters of ``[A-Za-z0-9_-]``), an ``on_conflict`` other than
        ``reject``, ``cancel`` or ``join``, ``cancel`` or ``join`` without a
        key (they say what to do with the key's running stream, and there is
        none), or a ``stream_id`` given with a key.
    """
    if on_conflict not in ON_CONFLICT:
        raise ValueError(
            f"on_conflict must be 'reject', 'cancel' or 'join', not {on_conflict!r}"
        )
    if key is None:
        if on_conflict != "reject":
            raise ValueError(
                f"on_conflict={on_conflict!r} only applies with key=: pass the "
                "key (say, a chat id) whose running stream it should "
                f"{on_conflict}, or leave on_conflict out"
            )
        return
    if not is_valid_stream_id(key):
        raise ValueError("key must be 1-128 characters of A-Z, a-z, 0-9, '_' and '-'")
    if stream_id is not None:
        raise ValueError("a keyed stream's id is made by the server: pass no stream_id")


#: Bounds of the per-stream overrides (``open_stream(ttl=...)``, ...).
RETENTION_BOUNDS: dict[str, tuple[int, int]] = {
    "ttl": (1, 7 * 86400),
    "completion_ttl": (1, 7 * 86400),
    "max_events": (1, 1_000_000),
    "cancel_when_abandoned": (1, 7 * 86400),
}


@dataclasses.dataclass(frozen=True)
class Retention:
    """Per-stream overrides of the settings (None: the setting applies)."""

    #: Seconds the open stream lives at most (``SSE_RESILIENCE_STREAM_TTL``).
    ttl: int | None = None
    #: Seconds its end is kept (``SSE_RESILIENCE_COMPLETION_TTL``).
    completion_ttl: int | None = None
    #: Events its log keeps (``SSE_RESILIENCE_MAX_EVENTS``).
    max_events: int | None = None
    #: Seconds without a follower after which it is cancelled (``by:
    #: "abandoned"``); None or 0: never.
    cancel_when_abandoned: float | None = None

    def __post_init__(self) -> None:
        """Check every value against :data:`RETENTION_BOUNDS`.

        :raises ValueError: naming the bad value.
        """
        for name, (low, high) in RETENTION_BOUNDS.items():
            value = getattr(self, name)
            if value is None or (name == "cancel_when_abandoned" and value == 0):
                continue
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if name != "cancel_when_abandoned" and not isinstance(value, int):
                number = False
            if not number or not low <= value <= high:
                raise ValueError(f"{name} must be a number from {low} to {high}")


class StreamId(str):
    """A stream id returned by ``open_stream``; :attr:`joined` is True when
    it names a stream that already ran (``on_conflict="join"``), so the
    caller must not start another producer for it."""

    joined: bool = False

    def __new__(cls, value: str, joined: bool = False) -> StreamId:
        made = super().__new__(cls, value)
        made.joined = joined
        return made


def from_millis(value: str | int | None) -> datetime | None:
    """Turn Redis milliseconds since the epoch into an aware UTC datetime."""
    if value in (None, ""):
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc)


def to_iso(value: datetime | None) -> str | None:
    """ISO 8601 text of a datetime, or None."""
    return value.isoformat().replace("+00:00", "Z") if value else None


class RecordField(str, enum.Enum):
    """The fields of a stream's record hash: the one place they are named
    (the scripts in :mod:`~flask_sse_resilience.store.scripts` use these names)."""

    STREAM_ID = "streamId"
    STREAM_TYPE = "streamType"
    USER_ID = "userId"
    METADATA = "metadata"
    STATE = "state"
    STARTED_AT = "startedAt"
    LAST_HEARTBEAT = "lastHeartbeat"
    ENDED_AT = "endedAt"
    #: Sequence number of the last logged event, and its log id.
    SEQ = "seq"
    LAST_EVENT_ID = "lastEventId"
    #: The write lease: the token of the producer allowed to write.
    PRODUCER = "producer"
    #: A cancel request (JSON ``{"reason", "by"}``) and when it came (ms).
    CANCEL = "cancel"
    CANCEL_AT = "cancelAt"
    #: The stream's key (unique among its owner's active streams), if any.
    KEY = "key"
    #: Per-stream retention, when ``open_stream`` overrode the settings.
    MAX_EVENTS = "maxEvents"
    COMPLETION_TTL = "completionTtl"
    #: Cancel after this many ms without a follower (0 or absent: never),
    #: and when a follower last left (ms).
    ABANDON_MS = "abandonMs"
    FOLLOWED_AT = "followedAt"
    #: Log id of the last event the latest snapshot covers ("" before the
    #: first event), once the producer wrote one.
    SNAPSHOT_ID = "snapshotId"


class CompletionField(str, enum.Enum):
    """The fields of a stream's completion hash (its terminal event)."""

    STREAM_ID = "streamId"
    USER_ID = "userId"
    TERMINAL_EVENT_TYPE = "terminalEventType"
    TERMINAL_EVENT_DATA = "terminalEventData"
    COMPLETED_AT = "completedAt"
    EVENT_ID = "eventId"


class EntryField(str, enum.Enum):
    """The fields of one entry of a stream's event log."""

    SEQ = "seq"
    TYPE = "type"
    DATA = "data"


@dataclasses.dataclass(frozen=True)
class StreamMetadata:
    """One stream's registry record, as stored in its Redis hash."""

    stream_id: str
    stream_type: str
    user_id: str
    started_at: datetime
    last_heartbeat: datetime
    state: StreamState
    metadata: dict[str, Any]
    #: Sequence number of the last event logged (0 before the first).
    seq: int = 0
    #: Log id of the last event logged, or None before the first.
    last_event_id: str | None = None
    #: SSE connections currently following the stream, across all workers.
    connections: int = 0
    ended_at: datetime | None = None
    #: The stream's key (``open_stream(key=...)``), or None.
    key: str | None = None
    #: The pending cancel request (``{"reason", "by"}``) of a stream that
    #: has not ended yet, or the one it ended with; None if never asked.
    cancel: dict[str, Any] | None = None
    #: Log id of the last event the latest snapshot covers ("" if it came
    #: before the first), or None without a snapshot.
    snapshot_id: str | None = None

    @classmethod
    def from_hash(cls, raw: Mapping[str, str], connections: int = 0) -> StreamMetadata:
        """Build a record from the decoded fields of its Redis hash and the
        size of its connection set."""
        f = RecordField
        started = from_millis(raw[f.STARTED_AT])
        heartbeat = from_millis(raw.get(f.LAST_HEARTBEAT)) or started
        assert started is not None and heartbeat is not None
        return cls(
            stream_id=raw[f.STREAM_ID],
            stream_type=raw.get(f.STREAM_TYPE, ""),
            user_id=raw[f.USER_ID],
            started_at=started,
            last_heartbeat=heartbeat,
            state=StreamState(raw.get(f.STATE, "active")),
            metadata=json.loads(raw.get(f.METADATA) or "{}"),
            seq=int(raw.get(f.SEQ) or 0),
            last_event_id=raw.get(f.LAST_EVENT_ID) or None,
            connections=max(0, connections),
            ended_at=from_millis(raw.get(f.ENDED_AT)),
            key=raw.get(f.KEY) or None,
            cancel=json.loads(raw[f.CANCEL]) if raw.get(f.CANCEL) else None,
            snapshot_id=raw.get(f.SNAPSHOT_ID),
        )


@dataclasses.dataclass(frozen=True)
class CompletionData:
    """A finished stream's terminal event, kept for clients that come late."""

    stream_id: str
    terminal_event_type: str
    terminal_event_data: Any
    completed_at: datetime
    #: Log id of the terminal event, sent as its SSE ``id:``.
    event_id: str | None = None
    user_id: str | None = None

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> CompletionData:
        """Build a completion from the decoded fields of its Redis hash."""
        f = CompletionField
        completed = from_millis(raw[f.COMPLETED_AT])
        assert completed is not None
        return cls(
            stream_id=raw[f.STREAM_ID],
            terminal_event_type=raw[f.TERMINAL_EVENT_TYPE],
            terminal_event_data=json.loads(raw.get(f.TERMINAL_EVENT_DATA) or "null"),
            completed_at=completed,
            event_id=raw.get(f.EVENT_ID) or None,
            user_id=raw.get(f.USER_ID) or None,
        )

    def to_event(self) -> Event:
        """The terminal event as it appears in the stream."""
        return Event(
            id=self.event_id,
            seq=0,
            type=self.terminal_event_type,
            data_json=wire.dumps(self.terminal_event_data),
        )


@dataclasses.dataclass(frozen=True)
class Event:
    """One event of a stream: its log id, sequence number, type and JSON data.

    ``data_json`` is the data already serialized, so an event fanned out to many
    connections is serialized once; :meth:`encode` builds the SSE frame (in
    :mod:`~flask_sse_resilience.wire`) once too.
    """

    id: str | None
    seq: int
    type: str
    data_json: str

    @classmethod
    def unlogged(cls, made: wire.Unlogged) -> Event:
        """The event the server sends for ``made`` (say,
        :data:`~flask_sse_resilience.wire.LOG_TRIMMED`): no log id, sequence
        number 0."""
        return cls(id=None, seq=0, type=made.type, data_json=made.data_json)

    @property
    def data(self) -> Any:
        """The event data, parsed from JSON."""
        return json.loads(self.data_json)

    @property
    def terminal(self) -> bool:
        """True if this event ends its stream."""
        return self.type in TERMINAL_TYPES

    def envelope(self) -> str:
        """The JSON text ``{"type": ..., "data": ...}`` sent as SSE ``data``."""
        return wire.envelope(self.type, self.data_json)

    def encode(self) -> bytes:
        """The SSE frame for this event (``id:`` and one ``data:`` line)."""
        return self._frame

    @functools.cached_property
    def _frame(self) -> bytes:
        # Built on first use and kept: every follower in this process shares it.
        return wire.event_frame(self.id, self.type, self.data_json)
