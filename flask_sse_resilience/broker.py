"""Live delivery: one pub/sub connection per worker (per node on a cluster).

The :class:`Broker` keeps one Redis pub/sub connection for the whole process
(on a cluster, one sharded pub/sub connection per node serving a followed
stream) and subscribes to a stream's channel while at least one local
connection follows it. Every announced event is parsed and encoded once per
worker into that stream's :class:`~flask_sse_resilience.timeline.Timeline`,
which all local followers read: per connection there is only a
:class:`~flask_sse_resilience.timeline.Follower` holding its position.

Whenever Redis confirms a subscription (first subscribe, or resubscribe after a
reconnect) every local follower of that stream is told to :data:`RESYNC`: catch
up from the log by its last id; so a dropped pub/sub connection, or an event
published before the subscription took effect, loses nothing. A follower
further behind than the timeline reaches back is told :data:`BEHIND` and reads
the log instead; memory per stream stays bounded.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from typing import Any

from redis.exceptions import ClusterCrossSlotError

from .eventlog import parse_message
from .keys import Keys
from .loops import supervise
from .redisutil import UNAVAILABLE, RedisClient, as_text, is_cluster
from .timeline import BEHIND, MAX_HANDOUT, RESYNC, Follower, Notice, Timeline

__all__ = [
    "MAX_HANDOUT",
    "BEHIND",
    "RESYNC",
    "Broker",
    "Follower",
    "Notice",
    "Timeline",
]

log = logging.getLogger(__name__)

#: Our own generator: reconnect jitter must not move the app's ``random``.
_jitter = random.Random()


class _Link:
    """One pub/sub connection (to the Redis, or to one cluster node) and the
    thread listening on it."""

    def __init__(
        self, broker: Broker, name: str, make_pubsub: Any, *, sharded: bool
    ) -> None:
        self.broker = broker
        self.name = name
        self.make_pubsub = make_pubsub
        self.sharded = sharded
        self.commands = ("ssubscribe", "sunsubscribe") if sharded else (
            "subscribe", "unsubscribe"
        )  # fmt: skip
        #: Streams subscribed through this link.
        self.streams: set[str] = set()
        self.connects = 0
        self._io_lock = threading.RLock()
        self._pubsub: Any = None
        self._thread: threading.Thread | None = None

    def subscribe(self, stream_id: str) -> None:
        """Subscribe to a stream already added to :attr:`streams`."""
        self.ensure_running()
        self._send(self.commands[0], stream_id)

    def unsubscribe(self, stream_id: str) -> None:
        """Unsubscribe from a stream already removed from :attr:`streams`."""
        self._send(self.commands[1], stream_id)

    def _send(self, command: str, stream_id: str) -> None:
        with self._io_lock:
            pubsub = self._pubsub
            if pubsub is None:
                return  # the listener subscribes to everything when it connects
            try:
                getattr(pubsub, command)(self.broker.keys.channel(stream_id))
            except UNAVAILABLE:
                log.warning("pub/sub %s failed; the listener will reconnect", command)
                self.close()

    def ensure_running(self) -> None:
        """Start the listener thread unless it runs."""
        with self._io_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(
                target=self._run, name=f"sse-resilience-pubsub-{self.name}", daemon=True
            )
            self._thread.start()

    def _connect(self) -> Any:
        # Under the I/O lock, so that a subscribe() racing with us either is in
        # the channel list read here or sends its own SUBSCRIBE on the new
        # connection, never neither; and only one greenlet opens the socket.
        with self._io_lock:
            pubsub = self.make_pubsub()
            channels = [self.broker.keys.channel(sid) for sid in list(self.streams)]
            try:
                for channel in channels:  # one by one: a cluster wants one slot each
                    getattr(pubsub, self.commands[0])(channel)
            except BaseException:
                pubsub.close()
                raise
            self._pubsub = pubsub
        self.connects += 1
        return pubsub

    def close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:  # noqa: BLE001 - closing a broken socket
                log.debug("closing pub/sub failed", exc_info=True)

    def _run(self) -> None:
        broker = self.broker
        delay = 0.05
        while not broker.stopped.is_set():
            if self.sharded and broker.retire(self):
                break  # a cluster node's link lives while it carries streams
            try:
                pubsub = self._pubsub or self._connect()
                message = pubsub.get_message(timeout=broker.poll)
            except Exception as exc:  # noqa: BLE001 - the listener must survive
                # Exponential backoff with jitter, so the workers of a fleet do
                # not reconnect in lockstep when Redis comes back.
                pause = _jitter.uniform(delay / 2, delay)
                # CROSSSLOT: after a blip, redis-py resubscribes a sharded
                # pub/sub to all its channels in one command; we reconnect
                # and subscribe one by one instead.
                if isinstance(exc, (*UNAVAILABLE, ClusterCrossSlotError)):
                    log.warning("pub/sub lost (%s); retrying in %.2fs", exc, pause)
                else:
                    log.exception("pub/sub listener failed; reconnecting")
                self.close()
                # Nothing reaches these followers until Redis is back: let
                # their clients know (they retry, with backoff, and resume)
                # rather than leave them on a line that went silent.
                broker.close_streams(list(self.streams), Notice.RECONNECT)
                broker.lost(self)
                broker.stopped.wait(pause)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            if message is None:
                continue
            try:
                broker.dispatch(message)
            except Exception:  # noqa: BLE001 - the listener must survive
                log.exception("could not deliver a pub/sub message; resyncing")
                broker.resync(list(self.streams))
        self.close()

    def stop(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        self.close()


class Broker:
    """The process's pub/sub listeners and their fan-out to followers.

    On a single Redis (or behind Sentinel) one pub/sub connection carries
    every stream; on a cluster, streams are followed with sharded pub/sub
    (``SSUBSCRIBE``) on the node serving their slot, one connection per node
    at most.
    """

    def __init__(
        self, redis: RedisClient, keys: Keys, *, buffer: int, poll: float = 1.0
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.buffer = buffer
        self.poll = poll
        self.pid = os.getpid()
        self.cluster = is_cluster(redis)
        self._subs: dict[str, Timeline] = {}
        self._link_of: dict[str, _Link] = {}
        self._links: dict[str, _Link] = {}
        self._lock = threading.Lock()
        self.stopped = threading.Event()
        supervise(self)

    def revive(self) -> None:
        """Restart the listener of every link that carries streams and whose
        thread ended; see :mod:`~flask_sse_resilience.loops`."""
        if self.pid != os.getpid() or self.stopped.is_set():
            return
        for link in list(self._links.values()):
            if link.streams:
                link.ensure_running()

    def resync(self, stream_ids: list[str]) -> None:
        """Have every local follower of these streams catch up from the log."""
        for stream_id in stream_ids:
            timeline = self._subs.get(stream_id)
            if timeline is not None:
                timeline.resync()

    @property
    def connects(self) -> int:
        """Times the listeners have (re)connected; for tests and metrics."""
        return sum(link.connects for link in list(self._links.values()))

    @property
    def channels(self) -> int:
        """Number of streams this process currently follows."""
        return len(self._subs)

    def subscribe(self, stream_id: str) -> Follower:
        """Start following a stream; the caller must :meth:`unsubscribe`."""
        with self._lock:
            timeline = self._subs.get(stream_id)
            first = timeline is None
            if timeline is None:
                timeline = self._subs[stream_id] = Timeline(self.buffer)
            follower = Follower(stream_id, timeline)
            timeline.followers.add(follower)
            if first:
                link = self._link_of[stream_id] = self._link_for(stream_id)
                link.streams.add(stream_id)
        if first:
            self.stopped.clear()
            link.subscribe(stream_id)
        return follower

    def unsubscribe(self, follower: Follower) -> None:
        """Stop following; the last one out leaves the channel."""
        link = None
        with self._lock:
            timeline = self._subs.get(follower.stream_id)
            if timeline is None or follower not in timeline.followers:
                return
            timeline.followers.discard(follower)
            if not timeline.followers:
                del self._subs[follower.stream_id]
                link = self._link_of.pop(follower.stream_id, None)
                if link is not None:
                    link.streams.discard(follower.stream_id)
        if link is not None:
            link.unsubscribe(follower.stream_id)

    def close_all(self, reason: Notice) -> int:
        """Close every follower in this process; return how many."""
        return self.close_streams(list(self._subs), reason)

    def close_streams(self, stream_ids: list[str], reason: Notice) -> int:
        """Close every local follower of the given streams; return how many."""
        with self._lock:
            followers = [
                f for sid in stream_ids if sid in self._subs
                for f in self._subs[sid].followers
            ]  # fmt: skip
        for follower in followers:
            follower.close(reason)
        return len(followers)

    @property
    def followers(self) -> int:
        """Number of local connections following some stream."""
        with self._lock:
            return sum(len(t.followers) for t in self._subs.values())

    def buffered(self, stream_id: str) -> int:
        """Number of live events this process holds for ``stream_id``."""
        timeline = self._subs.get(stream_id)
        return len(timeline.events) if timeline is not None else 0

    def stop(self) -> None:
        """Stop the listeners and close their connections."""
        self.stopped.set()
        for link in list(self._links.values()):
            link.stop(timeout=self.poll * 3)

    def _link_for(self, stream_id: str) -> _Link:
        """The link serving ``stream_id``'s channel (caller holds the lock)."""
        if not self.cluster:
            name, make = "main", self.redis.pubsub
        else:
            node = self.redis.get_node_from_key(self.keys.channel(stream_id))  # type: ignore[union-attr]
            name = node.name
            make = self.redis.get_redis_connection(node).pubsub  # type: ignore[union-attr]
        link = self._links.get(name)
        if link is None:
            link = self._links[name] = _Link(self, name, make, sharded=self.cluster)
        return link

    def lost(self, link: _Link) -> None:
        """A link lost its connection: on a cluster, let go of its streams
        (their followers were told to reconnect; they will subscribe afresh,
        through whichever node serves their slot after a failover) and
        refresh the cluster's map of slots."""
        if not self.cluster:
            return
        with self._lock:
            for stream_id in list(link.streams):
                if self._link_of.get(stream_id) is link:
                    # The next follower of it starts a new timeline and
                    # subscription; the old followers are on their way out.
                    self._link_of.pop(stream_id, None)
                    self._subs.pop(stream_id, None)
            link.streams.clear()
        try:
            self.redis.nodes_manager.initialize()  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - the next command retries it anyway
            log.debug("refreshing the cluster map failed", exc_info=True)

    def retire(self, link: _Link) -> bool:
        """Drop a cluster node's link that carries no stream; True if dropped.
        Under the lock, so a subscribe either finds it busy or makes a new one."""
        with self._lock:
            if link.streams:
                return False
            if self._links.get(link.name) is link:
                del self._links[link.name]
            return True

    def dispatch(self, message: dict[str, Any]) -> None:
        """Hand one pub/sub message to the followers of its stream."""
        kind = message.get("type")
        if kind not in ("message", "smessage", "subscribe", "ssubscribe"):
            return
        stream_id = self.keys.stream_id_from_channel(as_text(message["channel"]))
        timeline = self._subs.get(stream_id)
        if timeline is None:
            return
        if kind in ("subscribe", "ssubscribe"):
            timeline.resync()
            return
        try:
            event = parse_message(message["data"])
        except ValueError:
            log.error("malformed announcement on %s", message["channel"])
            timeline.resync()
            return
        event.encode()  # once per worker, here; followers share the bytes
        timeline.add(event)
