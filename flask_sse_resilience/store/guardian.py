"""The stream guardian: ends streams whose producer stopped heartbeating.

Every worker schedules it (APScheduler: ``GeventScheduler`` under gevent,
``BackgroundScheduler`` otherwise), but each tick first takes or renews a
leader lock in Redis (``SET NX PX`` with an owner token, renewed and released
only by its owner), so one sweep runs per interval across all workers and
hosts. If the leader dies, its lock expires and another worker takes over
within one lock TTL.

A sweep reads the active index for streams whose heartbeat is older than the
stale threshold by the Redis clock, and ends each one as ``orphaned`` in one
script that checks it is *still* active and *still* stale, so a leader paused
past its lock cannot orphan a stream that heartbeated or completed meanwhile.
The same round trips *fence* streams whose cancel request is older than the
cancel grace (they end ``cancelled``, as does a stale stream that was asked
to cancel) and cancel streams nobody followed for their
``cancel_when_abandoned`` (see :mod:`~flask_sse_resilience.store.control`).
The terminal event (type ``failed``, data ``{"reason": "orphaned"}``) is
logged, stored as the completion and announced to every follower on every
worker. Index entries whose stream expired or already ended are dropped, so
the index never grows without bound. Round trips per sweep are constant:
lock, candidates, one pipeline over them, the sweep record.

A producer cut off by a Redis outage (a failover, ``CLUSTERDOWN``, a restart)
cannot heartbeat, yet it is alive. So staleness is judged against the
guardian's own view of each shard, kept in Redis beside the shard (its
*watch*: when it was last swept, and since when without a gap): a shard that
went unswept for longer than :attr:`Settings.guardian_gap
<flask_sse_resilience.settings.Settings.guardian_gap>` (because its node could
not be reached, or no guardian ran) gets one stale threshold of grace from the
first sweep that reaches it again, whichever worker or host leads by then. A
heartbeat counts as no older than the start of that grace. Since the guardian
ticks at least five times per ``stale - heartbeat``, an outage long enough to
make a live stream look stale always leaves such a gap.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from ..ids import worker_name
from ..models import StreamState
from ..redisio import outages
from ..redisio.commands import RedisClient, hash_to_text
from ..redisio.failures import UNAVAILABLE
from ..redisio.loops import revive_all, supervise
from ..settings import Settings
from . import scripts
from .control import StreamControl
from .eventlog import EventLog
from .keys import Keys
from .scheduling import is_running, start_interval
from .scripts import Scripts, Status

log = logging.getLogger(__name__)

#: Data of the terminal event of an orphaned stream.
ORPHANED_DATA = '{"reason":"orphaned"}'


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """What one guardian tick did."""

    #: False when this worker did not sweep (see :attr:`skipped`).
    swept: bool
    #: Ids of the streams this sweep ended as orphaned.
    orphaned: tuple[str, ...] = ()
    #: Ids of the streams this sweep ended cancelled (fenced after the cancel
    #: grace, or stale with a cancel request).
    cancelled: tuple[str, ...] = ()
    #: Ids of the streams this sweep found abandoned and asked to cancel.
    abandoned: tuple[str, ...] = ()
    #: Active-index entries dropped because their stream expired or ended.
    pruned: int = 0
    #: Wall time of the sweep, in seconds.
    seconds: float = 0.0
    #: Why nothing was swept: ``not-leader``.
    skipped: str = ""
    #: Shards whose streams are in their grace after a gap in the sweeps
    #: (an outage); none of their streams was judged.
    grace: int = 0


@dataclasses.dataclass(frozen=True)
class SweepRecord:
    """The last sweep as recorded in Redis (by whichever worker led)."""

    #: When it ended, in ms since the epoch (Redis clock).
    at_ms: int
    worker: str
    orphaned: int
    pruned: int
    ms: int
    #: Sweeps so far, this one included.
    sweep: int

    @classmethod
    def parse(cls, reply: Any) -> SweepRecord | None:
        """The record from a :func:`queue_last_sweep` reply, or None."""
        raw = hash_to_text(reply)
        if not raw:
            return None
        return cls(
            at_ms=int(raw["at"]),
            worker=raw.get("worker", ""),
            **{f: int(raw.get(f, 0)) for f in ("orphaned", "pruned", "ms", "sweep")},
        )


def queue_last_sweep(pipe: Any, keys: Keys) -> None:
    """Queue reading the last sweep's record on ``pipe`` (see
    :meth:`SweepRecord.parse`)."""
    pipe.hgetall(keys.guardian_last)


class StreamGuardian:
    """Finds stale streams, marks them orphaned, and keeps the index clean."""

    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        log: EventLog,
        settings: Settings,
        *,
        control: StreamControl | None = None,
        on_ended: Callable[[str, StreamState], None] | None = None,
        on_swept: Callable[[SweepResult], None] | None = None,
        page: int = 1000,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.log = log
        self.settings = settings
        self.page = page
        self.control = control
        self.on_ended = on_ended
        self.on_swept = on_swept
        self.pid = os.getpid()
        #: This worker's owner token for the leader lock.
        self.token = f"{worker_name()}:{secrets.token_hex(4)}"
        self.lock_ttl_ms = int((settings.guardian_tick * 1.5 + 0.5) * 1000)
        self.scripts = Scripts(redis)
        self._scheduler: Any = None
        self._stopping = False
        self._lock = threading.Lock()
        self._ticking = threading.Lock()
        #: The last tick's result, or None before the first.
        self.last_result: SweepResult | None = None
        supervise(self)

    def run_once(self, *, force: bool = False) -> SweepResult:
        """Sweep once if this worker leads.

        ``force`` (an operator's ``flask sse sweep``) sweeps whether or not
        this worker leads, and judges streams in their grace after an outage
        too.

        :raises redis.exceptions.RedisError: one of
            :data:`~flask_sse_resilience.redisio.failures.UNAVAILABLE` if Redis
            cannot be reached.
        """
        lead = scripts.lead(self.keys, token=self.token, ttl_ms=self.lock_ttl_ms)
        leads = self.scripts.run(lead)
        if not (leads or force):
            return SweepResult(swept=False, skipped="not-leader")
        return self._sweep(force)

    def _sweep(self, force: bool) -> SweepResult:
        started = time.monotonic()
        settings = self.settings
        stale_ms = int(settings.stale_threshold * 1000)
        gap_ms = int(settings.guardian_gap * 1000)
        watch_ttl_ms = settings.stream_ttl * 1000
        grace_ms = int(settings.fence_after * 1000)
        ended: list[tuple[str, StreamState]] = []
        abandoned: list[str] = []
        pruned = grace = 0
        # One pipeline asks every shard of the index for its stale entries;
        # only a shard that filled its page is asked again.
        shards = list(range(self.keys.shards))
        unreachable = 0
        while shards:
            calls = [
                scripts.stale_ids(
                    self.keys, shard, stale_ms=stale_ms, limit=self.page,
                    grace_ms=grace_ms, watch=True, gap_ms=gap_ms,
                    watch_ttl_ms=watch_ttl_ms, force=force,
                )
                for shard in shards
            ]  # fmt: skip
            replies = self.scripts.run_many(calls, partial=True)
            # A shard whose node failed is skipped: it is not stamped, so the
            # gap gives its streams their grace once it is back.
            failed = [r for r in replies if isinstance(r, Exception)]
            if failed and len(failed) == len(replies):
                raise failed[0]
            unreachable += len(failed)
            shards = [s for s, r in zip(shards, replies, strict=True)
                      if not isinstance(r, Exception)]  # fmt: skip
            found = [r for r in replies if not isinstance(r, Exception)]
            grace += sum(stale.in_grace for stale in found)
            # Stale and fenced ids: one terminal write each (a stream both
            # stale and fenced is written once).
            ids = list(dict.fromkeys(
                stream_id for stale in found
                for stream_id in (*stale.stale, *stale.fence)
            ))  # fmt: skip
            outcomes = self.log.orphan_many(
                ids, stale_ms=stale_ms, data=ORPHANED_DATA, grace=not force
            )
            for stream_id, (status, state) in zip(ids, outcomes, strict=True):
                if status is Status.WRITTEN and state is not None:
                    ended.append((stream_id, state))
                elif status in (Status.ENDED, Status.MISSING):
                    pruned += 1
            due = [stream_id for stale in found for stream_id in stale.abandon]
            abandoned += self._cancel_abandoned(due)
            shards = [
                shard
                for shard, stale in zip(shards, found, strict=True)
                if any(
                    len(part) >= self.page
                    for part in (stale.stale, stale.fence, stale.abandon)
                )
            ]
        seconds = time.monotonic() - started
        orphaned = [sid for sid, state in ended if state is StreamState.ORPHANED]
        cancelled = [sid for sid, state in ended if state is StreamState.CANCELLED]
        record = scripts.record_sweep(
            self.keys,
            worker=self.token,
            orphaned=len(orphaned),
            pruned=pruned,
            ms=int(seconds * 1000),
        )
        self.scripts.run(record)
        for stream_id in orphaned:
            log.warning("stream %s orphaned: no heartbeat for %ss", stream_id,
                        self.settings.stale_threshold)  # fmt: skip
        for stream_id in cancelled:
            log.info("stream %s ended cancelled without its producer", stream_id)
        for stream_id, state in ended:
            if self.on_ended is not None:
                self.on_ended(stream_id, state)
        if pruned:
            log.info("guardian dropped %d expired or ended index entries", pruned)
        if unreachable:
            log.warning("guardian: %d shards unreachable, not swept", unreachable)
        if grace:
            log.info("guardian: %d shards in their grace after a gap in sweeps "
                     "(Redis unavailable, or no guardian ran)", grace)  # fmt: skip
        result = SweepResult(
            swept=True,
            orphaned=tuple(orphaned),
            cancelled=tuple(cancelled),
            abandoned=tuple(abandoned),
            pruned=pruned,
            seconds=seconds,
            grace=grace,
        )
        if self.on_swept is not None:
            self.on_swept(result)
        return result

    def _cancel_abandoned(self, due: list[str]) -> list[str]:
        """Look at the streams due for an abandon check; cancel (``by:
        "abandoned"``) the ones nobody followed for long enough."""
        if not due or self.control is None:
            return []
        found = self.control.abandoned(due)
        for stream_id in found:
            log.info("stream %s abandoned: no follower; cancelling it", stream_id)
            self.control.cancel(stream_id, by="abandoned")
        return found

    def tick(self) -> None:
        """The scheduled job: one :meth:`run_once`, never raising."""
        with self._ticking:
            if self._stopping:
                return  # a tick that raced stop() must not take the lock again
            self._tick()
        revive_all()

    def _tick(self) -> None:
        try:
            self.last_result = self.run_once()
        except UNAVAILABLE as exc:
            # Nothing to remember here: the gap this leaves in the shards'
            # watches gives their streams a grace, whoever sweeps next.
            outages.of(self.redis).failed(exc)
            log.debug("guardian skipped a tick, Redis unavailable: %s", exc)
        except Exception:  # noqa: BLE001 - a scheduled job must not die
            log.exception("guardian tick failed")

    def last_sweep(self) -> SweepRecord | None:
        """The last sweep recorded in Redis, by any worker, or None."""
        return SweepRecord.parse(self.redis.hgetall(self.keys.guardian_last))

    @property
    def running(self) -> bool:
        """True while the scheduler runs in this process."""
        return self._scheduler is not None

    def start(self) -> None:
        """Schedule :meth:`tick` every guardian interval in this process.

        Idempotent; see :mod:`~flask_sse_resilience.store.scheduling`.
        """
        with self._lock:
            if self._scheduler is not None:
                return
            self._stopping = False
            interval = self.settings.guardian_tick
            scheduler = start_interval(self.tick, interval, "sse-resilience-guardian")
            self._scheduler = scheduler
        log.info("guardian scheduled every %ss (worker %s)", interval, self.token)

    def revive(self) -> None:
        """Restart the scheduler if it was started in this process and its
        thread (or greenlet) ended; see :mod:`~flask_sse_resilience.redisio.loops`."""
        with self._lock:
            scheduler = self._scheduler
            if scheduler is None or self._stopping or self.pid != os.getpid():
                return
            if is_running(scheduler):
                return
            self._scheduler = None
        log.warning("the guardian's scheduler had stopped; restarting it")
        try:
            scheduler.shutdown(wait=False)
        except Exception:  # noqa: BLE001 - it is dead already
            log.debug("shutting a dead scheduler down failed", exc_info=True)
        self.start()

    def stop(self) -> None:
        """Stop the scheduler and give up the leader lock if this worker holds it."""
        with self._lock:
            scheduler, self._scheduler = self._scheduler, None
            self._stopping = True
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        with self._ticking:  # a tick under way finishes first, then lets go
            pass
        try:
            self.scripts.run(scripts.release(self.keys, token=self.token))
        except UNAVAILABLE:
            pass  # the lock expires by itself
