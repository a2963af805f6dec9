"""Optional Prometheus metrics: ``pip install flask-sse-resilience[metrics]``
and set ``SSE_RESILIENCE_METRICS = True``.

Per-process metrics (``connected_clients``, ``events_sent_total``,
``replays_total``, ``orphaned_total``, ``cancelled_total``,
``guardian_sweep_seconds``, ``redis_oom_total``: writes Redis refused
because it was full) live in ``prometheus_client``'s default registry;
with several gunicorn workers use its multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``). Some gauges are read from Redis when scraped,
so every worker reports the same cluster-wide value:
``active_streams`` and ``heartbeat_lag_seconds`` (age of the oldest heartbeat
among active streams, the figure to alert on before streams get orphaned),
and per master (labels ``redis``, the masked URL, and ``node``)
``redis_memory_used_bytes`` and ``redis_memory_max_bytes`` (``maxmemory``; 0
when unlimited).

Expose them as you like, e.g. ``app.wsgi_app = DispatcherMiddleware(app.wsgi_app,
{"/metrics": prometheus_client.make_wsgi_app()})``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from . import signals
from .errors import ConfigurationError
from .redisio import memory
from .redisio.commands import parse_now
from .redisio.failures import UNAVAILABLE
from .redisio.memory import NodeMemory

if TYPE_CHECKING:
    from flask import Flask

    from .state import State
    from .store.guardian import SweepResult

_NS = "sse_resilience"


class Metrics:
    """The process-wide metric objects (created once per process)."""

    def __init__(self) -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:
            raise ConfigurationError(
                "SSE_RESILIENCE_METRICS needs prometheus_client: "
                "pip install 'flask-sse-resilience[metrics]'"
            ) from exc
        self.connected_clients = prom.Gauge(
            "connected_clients", "Open SSE connections.", namespace=_NS,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.events_sent = prom.Counter(
            "events_sent", "Events logged by producers.", namespace=_NS
        )
        self.replays = prom.Counter(
            "replays", "Connections that resumed with Last-Event-ID.", namespace=_NS
        )
        self.orphaned = prom.Counter(
            "orphaned", "Streams ended by the guardian.", namespace=_NS
        )
        self.cancelled = prom.Counter(
            "cancelled", "Streams ended cancelled.", namespace=_NS
        )
        self.redis_oom = prom.Counter(
            "redis_oom", "Writes Redis refused because it was full (OOM).",
            namespace=_NS,
        )  # fmt: skip
        self.sweep_seconds = prom.Histogram(
            "guardian_sweep_seconds", "Duration of guardian sweeps.", namespace=_NS,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
        )  # fmt: skip
        self.states: weakref.WeakSet[State] = weakref.WeakSet()
        prom.REGISTRY.register(_RedisCollector(self))


class _RedisCollector:
    """Reads the cluster-wide gauges from Redis at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []  # unknown until collected; avoids a Redis call at register

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        active = GaugeMetricFamily(
            f"{_NS}_active_streams", "Streams in the active index.", labels=["prefix"]
        )
        lag = GaugeMetricFamily(
            f"{_NS}_heartbeat_lag_seconds",
            "Seconds since the oldest heartbeat among active streams.",
            labels=["prefix"],
        )
        used = GaugeMetricFamily(
            f"{_NS}_redis_memory_used_bytes",
            "Memory Redis uses (used_memory), per master.",
            labels=["redis", "node"],
        )
        limit = GaugeMetricFamily(
            f"{_NS}_redis_memory_max_bytes",
            "Redis's maxmemory (0: no limit), per master.",
            labels=["redis", "node"],
        )
        states = [state for state in self.metrics.states if not state.closed]
        for state in states:
            try:
                count, oldest = state.registry.index()
                now_ms = parse_now(state.redis.time())
            except UNAVAILABLE:
                continue
            active.add_metric([state.settings.key_prefix], count)
            first = min((beat for _, beat in oldest), default=now_ms)
            age = (now_ms - first) / 1000
            lag.add_metric([state.settings.key_prefix], max(0.0, age))
        for (where, _), node in _memory(states).items():
            used.add_metric([where, node.node], node.used)
            limit.add_metric([where, node.node], node.maxmemory)
        yield active
        yield lag
        yield used
        yield limit


def _memory(states: list[State]) -> dict[tuple[str, str], NodeMemory]:
    """Each master's memory once, by ``(Redis, node)``, whichever apps share
    it (``INFO`` refused or Redis unavailable: none)."""
    found: dict[tuple[str, str], NodeMemory] = {}
    for state in states:
        try:
            nodes = memory.read(state.redis)
        except RedisError:
            continue
        for node in nodes:
            found.setdefault((state.target.where, node.node), node)
    return found


_metrics: Metrics | None = None


def install(app: Flask, state: State) -> Metrics:
    """Feed the metrics from ``app``'s signals and state. Idempotent per app."""
    global _metrics
    if _metrics is None:
        _metrics = Metrics()
    metrics = _metrics
    if state in metrics.states:
        return metrics
    metrics.states.add(state)

    def connected(_app: Any, resumed: bool = False, **_: Any) -> None:
        metrics.connected_clients.inc()
        if resumed:
            metrics.replays.inc()

    def disconnected(_app: Any, **_: Any) -> None:
        metrics.connected_clients.dec()

    def orphaned(_app: Any, **_: Any) -> None:
        metrics.orphaned.inc()

    def cancelled(_app: Any, **_: Any) -> None:
        metrics.cancelled.inc()

    def swept(_app: Any, result: SweepResult, **_: Any) -> None:
        metrics.sweep_seconds.observe(result.seconds)

    def sent(_app: Any, **_: Any) -> None:
        metrics.events_sent.inc()

    state.outages.on_refused(metrics.redis_oom.inc)
    for signal, receiver in (
        (signals.client_connected, connected),
        (signals.client_disconnected, disconnected),
        (signals.stream_orphaned, orphaned),
        (signals.stream_cancelled, cancelled),
        (signals.guardian_swept, swept),
        (signals.event_sent, sent),
    ):
        signal.connect(receiver, sender=app, weak=False)
    return metrics


def scrape() -> bytes:
    """The current metrics in Prometheus' text format (for tests and simple
    ``/metrics`` views)."""
    import prometheus_client

    return bytes(prometheus_client.generate_latest())
