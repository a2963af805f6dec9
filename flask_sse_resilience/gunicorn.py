"""gunicorn server hooks: start the guardian with each worker, stop gracefully.

Use them from a gunicorn config file::

    # gunicorn.conf.py
    from flask_sse_resilience.gunicorn import post_worker_init, worker_exit, worker_int

With them, each worker schedules the guardian (and, with the dashboard on,
starts reporting to it) as soon as it boots instead of on its first request,
and on a graceful stop or reload (``SIGTERM``, ``SIGHUP``) the worker ends its
open stream responses within a fraction of a second, after sending a
``retry:`` hint, so clients reconnect to a live worker
and resume by ``Last-Event-ID``; then it lets its own producers finish within
``graceful_timeout``. A producer still running after that is left to the
guardian, which ends its stream once the heartbeat goes stale.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from .state import State, find_state

log = logging.getLogger(__name__)

_POLL = 0.2


def _state(worker: Any) -> State | None:
    state = find_state(getattr(worker, "wsgi", None))
    if state is None:
        log.warning("gunicorn hook: the app has no SSEResilience; nothing to do")
        return None
    return state


def _watch(worker: Any, state: State) -> None:
    while worker.alive:
        time.sleep(_POLL)
    worker.sse_stop_started = time.monotonic()
    ended = state.shutdown()
    log.info("worker %s stopping: ended %d stream responses", worker.pid, ended)


def post_worker_init(worker: Any) -> None:
    """gunicorn hook: schedule the guardian and watch for a graceful stop."""
    state = _state(worker)
    if state is None:
        return
    state.start_background()
    threading.Thread(
        target=_watch, args=(worker, state), name="sse-resilience-stop", daemon=True
    ).start()


def worker_int(worker: Any) -> None:
    """gunicorn hook: a quick stop (``SIGINT``/``SIGQUIT``) waits for nothing."""
    worker.sse_quick_exit = True


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: give this worker's producers the rest of the grace period
    (not on a quick stop: their streams are left to the guardian)."""
    state = _state(worker)
    if state is None:
        return
    if getattr(worker, "sse_quick_exit", False):
        state.shutdown()
        return
    started = getattr(worker, "sse_stop_started", time.monotonic())
    left = worker.cfg.graceful_timeout - (time.monotonic() - started) - 1
    state.shutdown(grace=max(0.0, left))
