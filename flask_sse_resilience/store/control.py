"""Control: asking a stream to stop, from anywhere, and making sure it does.

A cancel is **durable first**: :meth:`StreamControl.cancel` writes the request
(``{"reason", "by"}``) into the stream's record and the shard's *cancelling*
set in one script, then, in the same script, publishes it on the stream's
control channel, the fast path to its producer's process (see
:mod:`~flask_sse_resilience.serve.broker`). A producer learns of it in one of four
ways, whichever comes first: that message; its next heartbeat (the heartbeat
script reads the flag); its next write (refused once a cancel was asked for);
or, if it starts after the cancel, its claim of the stream.

Only one terminal event is ever written: once a cancel is asked for, every
terminal write (the producer's, the guardian's) ends the stream
``cancelled``. A producer that ignores the request is *fenced*: the guardian
ends the stream once the request is older than the cancel grace. A stream
whose producer is already dead (no heartbeat for the stale threshold), or one
superseded by a newer stream of its key, is ended here and now.

Streams opened with ``cancel_when_abandoned`` are looked at by the guardian
when due (see ``abandon.lua``): one that no client followed for that long,
across every worker and host, is cancelled with ``by: "abandoned"``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ..errors import StreamCancelled, StreamNotActiveError
from ..models import CANCELLERS, RecordField, StreamState
from ..redisio.commands import RedisClient, as_text
from . import scripts
from .eventlog import EventLog
from .keys import Keys
from .scripts import Scripts, Status

log = logging.getLogger(__name__)

#: Longest cancel reason kept, in characters.
MAX_REASON = 200


def stored_request(redis: RedisClient, keys: Keys, stream_id: str) -> str | None:
    """The cancel request kept in ``stream_id``'s record (its JSON text), or
    None while none was made (or once the record is gone): one ``HGET``, for
    a listener that may have missed the request's message."""
    request = redis.hget(keys.stream(stream_id), RecordField.CANCEL)
    return as_text(request) if request else None


def request_json(reason: str | None, by: str) -> str:
    """The JSON text of a cancel request, as stored and sent."""
    if by not in CANCELLERS:
        raise ValueError(f"by must be one of {', '.join(CANCELLERS)}, not {by!r}")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise ValueError(f"reason must be a string of at most {MAX_REASON} characters")
    return json.dumps({"reason": reason, "by": by}, separators=(",", ":"))


class StreamControl:
    """Cancels streams and checks abandoned ones."""

    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        log: EventLog,
        *,
        stale_threshold: float,
        lease_ms: int,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.log = log
        self.stale_ms = int(stale_threshold * 1000)
        self.lease_ms = lease_ms
        self.scripts = Scripts(redis)

    def cancel(
        self, stream_id: str, *, reason: str | None = None, by: str = "app"
    ) -> StreamState | None:
        """Ask ``stream_id`` to stop; return its state afterwards.

        :attr:`~StreamState.ACTIVE`: asked (now or before); its producer ends
        it ``cancelled``, or the guardian does after the cancel grace.
        :attr:`~StreamState.CANCELLED`: it has ended cancelled (now, because
        its producer was dead or it was ``superseded``, or before). Another
        ended state: it had ended otherwise, and nothing was written. None: no
        such stream.

        :raises ValueError: for a reason over :data:`MAX_REASON` characters
            or an unknown ``by``.
        :raises redis.exceptions.RedisError: one of
            :data:`~flask_sse_resilience.redisio.failures.UNAVAILABLE`.
        """
        request = request_json(reason, by)
        call = scripts.cancel(
            self.keys, stream_id, request_json=request, stale_ms=self.stale_ms
        )
        asked = self.scripts.run(call)
        if asked.status is Status.MISSING:
            return None
        if asked.status is Status.ENDED:
            return asked.state
        if asked.producer_dead or by == "superseded":
            return self._end_now(stream_id)
        return StreamState.ACTIVE

    def _end_now(self, stream_id: str) -> StreamState | None:
        """End a stream asked to cancel without its producer (a fence with no
        grace); return its state."""
        try:
            self.log.finish(
                stream_id,
                state=StreamState.CANCELLED,
                event_type="cancelled",
                data_json="null",
                stale_ms=self.stale_ms,
                grace_ms=0,
            )
        except StreamNotActiveError:  # it ended meanwhile, one way or another
            state = self.redis.hget(self.keys.stream(stream_id), RecordField.STATE)
            return StreamState(as_text(state)) if state else None
        log.info("stream %s cancelled without its producer", stream_id)
        return StreamState.CANCELLED

    def abandoned(self, stream_ids: list[str]) -> list[str]:
        """Of streams due for an abandon check, the ones nobody has followed
        for their ``cancel_when_abandoned`` (one pipelined round trip); each
        is dropped from its abandon set, for the caller to cancel."""
        calls = [
            scripts.abandon(self.keys, stream_id, lease_ms=self.lease_ms)
            for stream_id in stream_ids
        ]
        replies = self.scripts.run_many(calls)
        return [sid for sid, gone in zip(stream_ids, replies, strict=True) if gone]


class CancelFlag:
    """What a producer's process has learnt of its stream's cancel request."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        #: The request once learnt (None: one whose details are unknown), or
        #: False before.
        self.request: dict[str, Any] | None | bool = False

    @property
    def raised(self) -> bool:
        """True once a request was learnt of."""
        return self.request is not False

    def learn(self, request: dict[str, Any] | None = None) -> None:
        """Note a request (its details, when a later source has them)."""
        if self.request is False or (self.request is None and request):
            self.request = request

    def check(self) -> None:
        """:raises StreamCancelled: once a request was learnt of."""
        if self.request is not False:
            details = self.request if isinstance(self.request, dict) else None
            raise StreamCancelled(self.stream_id, details)
