"""Whether the streams this process follows still exist.

Pub/sub announces every event of a stream, its terminal one included, but
nothing announces a record that disappears: deleted, expired (its TTL,
``SSE_RESILIENCE_STREAM_TTL``, ran out), evicted (an ``allkeys-*`` policy
evicts the active index too, so the guardian never sees the stream), flushed,
or lost with a failover to a replica that never had it. Nor is a terminal
event announced again that this process missed (its pub/sub connection was
down at that moment, or the announcement never went out). Without a look at
the record, the followers of such a stream would get keep-alives forever.

So the :class:`~flask_sse_resilience.serve.broker.Broker` runs a
:class:`PresenceCheck` once per heartbeat interval: one ``HMGET`` per followed
stream (per stream, not per follower), all in one pipelined round trip (on a
cluster one per node, all nodes at once). Then:

- a stream whose record is gone, or was made again under its id, ends for
  every local follower with ``failed``, reason ``expired`` if the record's TTL
  had run out by then (its expiry is read on admission), else ``lost``;
- a stream whose record has ended while its followers still wait gets its real
  terminal event, the log's last entry, or from the completion store if the
  log is gone (one more round trip, for those streams only); each follower
  first catches up from the log.

An unavailable Redis (an error, a timeout, a cluster node that does not
answer) is no verdict: those streams are looked at again next time. A record
missing from a Redis that answers is gone, whatever the cause, including right
after a failover to a replica that never had it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..models import CompletionData, Event
from ..redisio.commands import RedisClient, is_cluster, run_calls
from ..redisio.loops import Periodic
from ..redisio.pernode import QueueCall
from ..store.completion import CompletionStore
from ..store.eventlog import EventLog
from ..store.registry import StreamRegistry
from .timeline import LOST, Timeline

log = logging.getLogger(__name__)


def terminal(last: list[Event], completion: CompletionData | None, seq: int) -> Event:
    """The terminal event of a stream whose record ended as event ``seq``: the
    log's ``last`` entry if it is that event, else the completion's, else (both
    gone too) :data:`~flask_sse_resilience.serve.timeline.LOST`."""
    if last and last[0].terminal and last[0].seq == seq:
        return last[0]
    if completion is not None:
        end = completion.to_event()
        return Event(id=end.id, seq=seq, type=end.type, data_json=end.data_json)
    return LOST


class PresenceCheck:
    """Looks at the records of followed streams and ends the followers of
    those that vanished or ended unheard (see the module).

    :param interval: seconds between checks (the heartbeat interval): a
        follower's end comes at most this long, plus the check's round trips,
        after its record went.
    """

    def __init__(
        self,
        registry: StreamRegistry,
        log: EventLog,
        completions: CompletionStore,
        *,
        interval: float,
    ) -> None:
        self.registry = registry
        self.log = log
        self.completions = completions
        self.interval = interval
        self.redis: RedisClient = registry.redis
        self.cluster = is_cluster(self.redis)
        #: Checks made, records read and streams ended; for tests and metrics.
        self.checks = 0
        self.reads = 0
        self.ended = 0
        self._source: Callable[[], Mapping[str, Timeline]] = dict
        # After a failure, look again soon: the bound on a follower's end
        # counts from the first check that reaches Redis.
        self.loop = Periodic(
            "presence", self._tick, interval, retry=min(0.25, interval)
        )

    def start(self, timelines: Callable[[], Mapping[str, Timeline]]) -> None:
        """Check the streams ``timelines()`` returns every interval, in a
        background loop, from now on (the broker calls this as it starts
        following a stream; cheap when the loop runs)."""
        self._source = timelines
        self.loop.ensure()

    def stop(self) -> None:
        """Stop the background loop (for good)."""
        self.loop.stop()

    def _tick(self) -> None:
        self.check(self._source())

    def check(self, timelines: Mapping[str, Timeline]) -> int:
        """Look once at the record of every stream of ``timelines`` that is not
        :attr:`~flask_sse_resilience.serve.timeline.Timeline.over` and end the
        followers of those gone or ended; return how many streams were ended.

        :raises redis.exceptions.RedisError: one of
            :data:`~flask_sse_resilience.redisio.failures.UNAVAILABLE`, when no
            record could be read; nothing was ended then.
        """
        pending = {sid: tl for sid, tl in timelines.items() if not tl.over}
        if not pending:
            return 0
        ids = list(pending)
        replies = self._run(
            len(ids),
            lambda i: self.registry.keys.stream(ids[i]),
            lambda pipe, i: self.registry.queue_state(pipe, ids[i]),
        )
        at = time.monotonic()
        self.checks += 1
        self.reads += len(ids)
        ended = 0
        finished: list[tuple[str, int]] = []
        for stream_id, reply in zip(ids, replies, strict=True):
            if isinstance(reply, Exception):
                continue  # its node did not answer: no verdict
            timeline = pending[stream_id]
            seen = self.registry.parse_state(reply)
            if seen is not None and timeline.started is None:
                timeline.started = seen.started
            if seen is None or seen.started != timeline.started:
                timeline.finish(timeline.vanished(at))
                ended += 1
            elif seen.state.ended:
                finished.append((stream_id, seen.seq))
        if finished:
            ended += self._give_ends(finished, pending)
        self.ended += ended
        return ended

    def _give_ends(
        self, finished: list[tuple[str, int]], timelines: Mapping[str, Timeline]
    ) -> int:
        """Hand the streams in ``finished`` (id, seq of the terminal event),
        whose records ended, their terminal events, read in one round trip
        (per node); return how many were handed one."""
        k = self.log.keys

        def key(i: int) -> str:
            stream_id = finished[i // 2][0]
            return k.log(stream_id) if i % 2 == 0 else k.completion(stream_id)

        def build(pipe: Any, i: int) -> None:
            stream_id = finished[i // 2][0]
            if i % 2 == 0:
                self.log.queue_read_last(pipe, stream_id)
            else:
                self.completions.queue_get(pipe, stream_id)

        replies = self._run(2 * len(finished), key, build)
        given = 0
        for n, (stream_id, seq) in enumerate(finished):
            last, completion = replies[2 * n], replies[2 * n + 1]
            if isinstance(last, Exception) or isinstance(completion, Exception):
                continue  # next time
            end = terminal(
                self.log.parse_entries(last), self.completions.parse(completion), seq
            )
            timelines[stream_id].finish(end)
            given += 1
        return given

    def _run(
        self, count: int, key: Callable[[int], str], build: QueueCall
    ) -> list[Any]:
        """Run ``count`` calls, call ``i`` (on ``key(i)``) queued by
        ``build(pipe, i)``, in one pipelined round trip (per node on a
        cluster); return each call's reply, or on a cluster the error of its
        node. Raises when no call could be run."""
        replies = run_calls(self.redis, [key(i) for i in range(count)], build)
        errors = [reply for reply in replies if isinstance(reply, Exception)]
        if errors and len(errors) == len(replies):
            raise errors[0]
        if errors:
            log.warning("presence check: %d of %d streams not read (%s); next time",
                        len(errors), len(replies), errors[0])  # fmt: skip
        return replies
