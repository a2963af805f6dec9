"""Opening, producing and stopping streams: the checks, wiring and signals
around the registry's and the control's writes, behind the extension's
``open_stream``, ``producer`` and ``cancel`` and the cancel endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis import exceptions as rx

from . import signals
from .errors import RedisUnavailable
from .ids import is_valid_stream_id
from .models import OnConflict, Retention, StreamId, StreamState, check_key
from .produce.eventcheck import check_metadata
from .produce.producer import Producer
from .produce.snapshots import AutoSnapshot
from .redisio.failures import UNAVAILABLE, store_error
from .redisio.target import is_wrong_database
from .state import State


@contextmanager
def store_errors(state: State) -> Iterator[None]:
    """Redis unavailable (or a database the server does not have, from a
    client passed as ``redis=``), reported to the app's outage log and raised
    as the typed :class:`RedisUnavailable` the public methods promise
    (answered 503 should it escape a view); a full Redis as its subclass
    :class:`~flask_sse_resilience.errors.RedisOutOfMemory`."""
    try:
        yield
    except UNAVAILABLE as exc:
        state.outages.failed(exc)
        raise store_error(exc) from exc
    except rx.ResponseError as exc:
        if not is_wrong_database(exc):
            raise
        state.outages.failed(exc)
        raise RedisUnavailable() from exc


def open_stream(
    state: State,
    user_id: str,
    stream_type: str,
    metadata: dict[str, Any] | None,
    stream_id: str | None,
    *,
    key: str | None,
    on_conflict: OnConflict,
    retention: dict[str, Any],
) -> StreamId:
    """Validate, register and announce a stream; see ``open_stream``.

    :raises ValueError: for a bad argument, naming it.
    """
    if stream_id is not None and not is_valid_stream_id(
        stream_id, state.stream_id_rule
    ):
        raise ValueError(
            "stream_id must be 1-128 characters of A-Z, a-z, 0-9, '_' and '-' "
            f"matching {state.settings.stream_id_pattern!r}"
        )
    if not user_id:
        raise ValueError("user_id must be a non-empty string")
    check_key(key, on_conflict, stream_id)
    check_metadata(metadata)
    if retention.get("cancel_when_abandoned") is None:
        retention["cancel_when_abandoned"] = state.settings.cancel_when_abandoned
    with store_errors(state):
        opened = state.registry.register(
            stream_id,
            user_id=str(user_id),
            stream_type=stream_type,
            metadata=metadata,
            key=key,
            on_conflict=on_conflict,
            retention=Retention(**retention),
            supersede=lambda old: cancel(state, old, None, "superseded"),
        )
    if not opened.joined:
        state.emit(signals.stream_opened, stream_id=opened, user_id=str(user_id))
    return opened


def cancel(
    state: State, stream_id: str, reason: str | None, by: str
) -> StreamState | None:
    """Ask a stream to stop (see :meth:`StreamControl.cancel
    <flask_sse_resilience.store.control.StreamControl.cancel>`); send
    ``stream_cancelled`` if that ended it here."""
    if not is_valid_stream_id(stream_id):
        return None
    with store_errors(state):
        after = state.control.cancel(stream_id, reason=reason, by=by)
    if after is StreamState.CANCELLED:
        state.emit(signals.stream_cancelled, stream_id=stream_id)
    return after


def producer(
    state: State,
    stream_id: str,
    retry_for: float | None,
    coalesce_ms: int | None = None,
    snapshots: AutoSnapshot | None = None,
) -> Producer:
    """A :class:`Producer` for ``stream_id`` wired to the app's stores, this
    process's heartbeat and pub/sub link, and the signals."""

    def ended(final: StreamState) -> None:
        state.emit(signals.ended_signal(final), stream_id=stream_id)

    return Producer(
        stream_id,
        log=state.log,
        heartbeater=state.heartbeater,
        max_event_bytes=state.settings.max_event_bytes,
        on_end=ended,
        on_send=lambda: state.emit(signals.event_sent, stream_id=stream_id),
        retry_for=state.settings.producer_retry_for if retry_for is None else retry_for,
        subscribe_cancels=state.broker.subscribe_cancels,
        coalesce=(state.settings.coalesce_ms if coalesce_ms is None else coalesce_ms)
        / 1000,
        coalesce_leading=state.settings.coalesce_leading,
        snapshots=snapshots,
    )
