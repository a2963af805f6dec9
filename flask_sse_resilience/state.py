"""Per-app state: the settings and the Redis-backed parts wired together.

Kept in ``app.extensions["sse_resilience"]``. The background parts (the pub/sub
broker and the heartbeat thread) are created on first use in the process that
uses them, so nothing started before gunicorn forks (``--preload``) is shared
with a worker.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from .broker import Broker
from .completion import CompletionStore
from .eventlog import EventLog
from .heartbeat import Heartbeater
from .keys import Keys
from .redisutil import RedisClient
from .registry import StreamRegistry
from .settings import Settings

IdentityLoader = Callable[[], Any]


class State:
    """Everything one app needs to serve and produce streams."""

    def __init__(
        self,
        settings: Settings,
        redis: RedisClient,
        identity: Callable[[], IdentityLoader | None],
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = Keys(settings.key_prefix)
        self._identity = identity
        self.registry = StreamRegistry(redis, self.keys, stream_ttl=settings.stream_ttl)
        self.completions = CompletionStore(
            redis, self.keys, ttl=settings.completion_ttl
        )
        self.log = EventLog(
            redis,
            self.keys,
            max_events=settings.max_events,
            completion_ttl=settings.completion_ttl,
        )
        self._lock = threading.Lock()
        self._broker: Broker | None = None
        self._heartbeater: Heartbeater | None = None

    @property
    def identity(self) -> IdentityLoader | None:
        """The app's identity loader, or None if none was given."""
        return self._identity()

    @property
    def broker(self) -> Broker:
        """This process's pub/sub broker, created on first use."""
        with self._lock:
            if self._broker is None or self._broker.pid != os.getpid():
                self._broker = Broker(
                    self.redis,
                    self.keys,
                    queue_size=self.settings.connection_queue_size,
                )
            return self._broker

    @property
    def heartbeater(self) -> Heartbeater:
        """This process's heartbeat thread, created on first use."""
        with self._lock:
            if self._heartbeater is None or self._heartbeater.pid != os.getpid():
                self._heartbeater = Heartbeater(
                    self.registry, self.settings.heartbeat_interval
                )
            return self._heartbeater

    def close(self) -> None:
        """Stop the background parts started in this process."""
        with self._lock:
            broker, self._broker = self._broker, None
            heartbeater, self._heartbeater = self._heartbeater, None
        if broker is not None and broker.pid == os.getpid():
            broker.stop()
        if heartbeater is not None and heartbeater.pid == os.getpid():
            heartbeater.stop()
