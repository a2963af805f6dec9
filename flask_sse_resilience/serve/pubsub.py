"""One pub/sub connection of the :mod:`~flask_sse_resilience.serve.broker` and the
thread (a greenlet under gevent) listening on it: it (re)connects with
jittered backoff, subscribes to every channel it carries on each connect, and
hands each message to its :class:`Listener` (the broker, which knows no more
of a link than this module knows of the broker: the protocol below).
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any, Protocol

from redis.exceptions import ClusterCrossSlotError

from ..redisio import outages
from ..redisio.commands import RedisClient
from ..redisio.failures import UNAVAILABLE
from ..store.keys import Keys
from .timeline import Notice

log = logging.getLogger(__name__)

#: Our own generator: reconnect jitter must not move the app's ``random``.
_jitter = random.Random()


class Listener(Protocol):
    """What a :class:`Link` asks of the one it listens for (the broker)."""

    #: The Redis client whose outages a link reports.
    redis: RedisClient
    #: Turns channel names back into stream ids.
    keys: Keys
    #: Set when the listener stops: every link ends.
    stopped: threading.Event
    #: Seconds a link waits for a message while it has no channel.
    poll: float

    def dispatch(self, message: dict[str, Any]) -> None:
        """Take one pub/sub message."""

    def resync(self, stream_ids: list[str]) -> None:
        """Have the followers of these streams catch up from the log
        (messages may have been missed)."""

    def close_streams(self, stream_ids: list[str], reason: Notice) -> int:
        """End the local followers of these streams with ``reason``."""

    def lost(self, link: Link) -> None:
        """``link``'s connection failed; it reconnects by itself."""

    def retire(self, link: Link) -> bool:
        """Whether ``link`` (a cluster node's) carries nothing any more and
        should end."""


class Link:
    """One pub/sub connection (to the Redis, or to one cluster node) and the
    thread listening on it, for the channels in :attr:`channels`."""

    def __init__(
        self, broker: Listener, name: str, make_pubsub: Any, *, sharded: bool
    ) -> None:
        self.broker = broker
        self.name = name
        self.make_pubsub = make_pubsub
        self.sharded = sharded
        self.commands = ("ssubscribe", "sunsubscribe") if sharded else (
            "subscribe", "unsubscribe"
        )  # fmt: skip
        #: Channels subscribed through this link.
        self.channels: set[str] = set()
        self.connects = 0
        self._io_lock = threading.RLock()
        self._pubsub: Any = None
        self._thread: threading.Thread | None = None

    def subscribe(self, channel: str) -> None:
        """Subscribe to a channel already added to :attr:`channels`."""
        self.ensure_running()
        self._send(self.commands[0], channel)

    def unsubscribe(self, channel: str) -> None:
        """Unsubscribe from a channel already removed from :attr:`channels`."""
        self._send(self.commands[1], channel)

    def _send(self, command: str, channel: str) -> None:
        with self._io_lock:
            pubsub = self._pubsub
            if pubsub is None:
                return  # the listener subscribes to everything when it connects
            try:
                getattr(pubsub, command)(channel)
            except UNAVAILABLE as exc:
                outages.of(self.broker.redis).failed(exc)
                log.debug("pub/sub %s failed; the listener will reconnect", command)
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
            channels = list(self.channels)
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
                break  # a cluster node's link lives while it carries channels
            try:
                pubsub = self._pubsub or self._connect()
                # Subscribed, a blocking read: no poll of the socket before
                # each message (a tenth of a busy worker's time went there);
                # stop() ends it by closing the connection. Else wait for a
                # subscription, a poll interval at most.
                wait = None if pubsub.subscribed else broker.poll
                message = pubsub.get_message(timeout=wait)
            except Exception as exc:  # noqa: BLE001 - the listener must survive
                if broker.stopped.is_set():
                    break  # stop() closed the connection under the read
                # Exponential backoff with jitter, so the workers of a fleet do
                # not reconnect in lockstep when Redis comes back.
                pause = _jitter.uniform(delay / 2, delay)
                # CROSSSLOT: after a blip, redis-py resubscribes a sharded
                # pub/sub to all its channels in one command; we reconnect
                # and subscribe one by one instead.
                if isinstance(exc, UNAVAILABLE):
                    outages.of(broker.redis).failed(exc)
                    log.debug("pub/sub lost (%s); retrying in %.2fs", exc, pause)
                elif isinstance(exc, ClusterCrossSlotError):
                    log.warning("pub/sub lost (%s); retrying in %.2fs", exc, pause)
                else:
                    log.exception("pub/sub listener failed; reconnecting")
                self.close()
                # Nothing reaches these followers until Redis is back: let
                # their clients know (they retry, with backoff, and resume)
                # rather than leave them on a line that went silent.
                broker.close_streams(self.stream_ids(), Notice.RECONNECT)
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
                broker.resync(self.stream_ids())
        self.close()

    def stream_ids(self) -> list[str]:
        """The streams whose events this link carries."""
        keys = self.broker.keys
        return [
            keys.stream_id_from_channel(channel)
            for channel in list(self.channels)
            if not keys.is_control(channel)
        ]

    def stop(self, timeout: float) -> None:
        """End the listener (the broker is stopped): close the connection,
        which ends its read, and wait for it."""
        self.close()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        self.close()  # had it connected again meanwhile
