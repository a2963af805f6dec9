"""Signals (blinker, like Flask's own) for logging and metrics hooks.

Each is sent with the Flask app as sender, in the process where the thing
happened: ``stream_opened`` where ``open_stream`` ran, ``stream_completed`` and
``stream_failed`` in the producer's process (as is ``event_sent``, after each
event a producer logged), ``stream_orphaned`` in the worker whose guardian
swept, ``stream_cancelled`` wherever the stream ended cancelled (its
producer's process, the guardian's worker after the cancel grace, or where
``cancel`` ended a stream whose producer was dead or superseded),
``client_connected`` / ``client_disconnected`` in the worker serving the
connection. Keyword arguments: ``stream_id``, plus ``user_id`` for
``stream_opened``, and ``resumed`` (a ``Last-Event-ID`` was sent) and ``live``
(the stream was active when the client was admitted) for ``client_connected``.
``guardian_swept`` is sent after each sweep this worker ran, with ``result``
(a :class:`~flask_sse_resilience.store.guardian.SweepResult`).

They are the package's one telemetry channel: the dashboard's counters
(:mod:`~flask_sse_resilience.store.stats`) and the Prometheus metrics
(:mod:`~flask_sse_resilience.metrics`) are receivers like any app's. A signal
nobody receives costs one attribute check.

::

    from flask_sse_resilience import signals

    @signals.stream_orphaned.connect_via(app)
    def alert(sender, stream_id, **extra):
        log.warning("stream %s lost its producer", stream_id)
"""

from __future__ import annotations

from blinker import NamedSignal, Namespace

_signals = Namespace()

stream_opened = _signals.signal("sse-stream-opened")
stream_completed = _signals.signal("sse-stream-completed")
stream_failed = _signals.signal("sse-stream-failed")
stream_orphaned = _signals.signal("sse-stream-orphaned")
stream_cancelled = _signals.signal("sse-stream-cancelled")
client_connected = _signals.signal("sse-client-connected")
event_sent = _signals.signal("sse-event-sent")
client_disconnected = _signals.signal("sse-client-disconnected")
guardian_swept = _signals.signal("sse-guardian-swept")


def ended_signal(state: str) -> NamedSignal:
    """The signal sent when a stream ends in ``state`` (a terminal
    :class:`~flask_sse_resilience.models.StreamState` or its value)."""
    return {
        "completed": stream_completed,
        "failed": stream_failed,
        "orphaned": stream_orphaned,
        "cancelled": stream_cancelled,
    }[str(getattr(state, "value", state))]
