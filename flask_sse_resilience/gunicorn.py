"""Under gunicorn: start the guardian in each worker, and stop gracefully.

Nothing to configure. In each worker, the extension's first request finds the
gunicorn worker serving it and attaches to it (:func:`adopt`): from then on,
on a graceful stop or reload (``SIGTERM`` to a worker; ``SIGTERM`` or
``SIGHUP`` to the master) the worker ends its open stream responses within a
fraction of a second, after sending a ``retry:`` hint, so clients reconnect
to a live worker and resume by ``Last-Event-ID``; then it lets its own
producers finish within ``graceful_timeout``. A quick stop (``SIGINT`` or
``SIGQUIT``) sends the hints at once and waits for nothing. A producer still
running at exit is left to the guardian, which ends its stream once the
heartbeat goes stale. The guardian only ever runs in workers, never in the
master, also with ``--preload``.

The hooks below are optional: in a config file they attach each worker at
boot instead of at its first request (the guardian then starts at once)::

    # gunicorn.conf.py
    from flask_sse_resilience.gunicorn import post_worker_init, worker_exit, worker_int

Importing this module imports nothing else of the package (nor Redis), so a
config file that does it leaves gevent's monkey-patching undisturbed.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from .preflight import on_stack

if TYPE_CHECKING:
    from .state import State

log = logging.getLogger(__name__)

_POLL = 0.2


def _state(worker: Any) -> State | None:
    from .state import find_state

    state = find_state(getattr(worker, "wsgi", None))
    if state is None:
        log.warning("gunicorn hook: the app has no SSEResilience; nothing to do")
    return state


def _states(worker: Any) -> list[State]:
    return list(getattr(worker, "sse_states", ()))


def _states_or_app(worker: Any) -> list[State]:
    """The states attached to ``worker``, or else its app's own (a worker
    that stops before its first request attached nothing)."""
    attached = _states(worker)
    if attached:
        return attached
    state = _state(worker)
    return [state] if state is not None else []


def current_worker() -> Any:
    """The gunicorn worker handling the current request (found on the call
    stack), or None outside gunicorn."""
    return on_stack("gunicorn.workers.base", "Worker")


def adopt(state: State) -> bool:
    """Attach ``state`` to the gunicorn worker serving the current request,
    if any (see the module docstring); return whether one was found."""
    worker = current_worker()
    if worker is None:
        return False
    attach(worker, state)
    return True


def attach(worker: Any, state: State) -> None:
    """End ``state``'s stream responses when ``worker`` is told to stop, and
    give its producers the rest of the graceful timeout. Idempotent."""
    states: list[State] | None = getattr(worker, "sse_states", None)
    if states is None:
        states = worker.sse_states = []
        _chain(worker, "worker_int", worker_int)
        _chain(worker, "worker_exit", worker_exit)
        threading.Thread(
            target=_end_when_stopping,
            args=(worker,),
            name="sse-resilience-stop",
            daemon=True,
        ).start()
    if state not in states:
        states.append(state)


def _chain(worker: Any, hook: str, ours: Any) -> None:
    """Run ``ours`` before the hook the config set (unless it is ours)."""
    theirs = getattr(worker.cfg, hook)
    if theirs is ours:
        return
    if hook == "worker_int":

        def chained_int(w: Any) -> None:
            ours(w)
            theirs(w)

        worker.cfg.set(hook, chained_int)
    else:

        def chained_exit(server: Any, w: Any) -> None:
            ours(server, w)
            theirs(server, w)

        worker.cfg.set(hook, chained_exit)


def _end_when_stopping(worker: Any) -> None:
    """Wait until ``worker`` is told to stop, then end its stream responses."""
    while worker.alive:
        time.sleep(_POLL)
    if getattr(worker, "sse_stop_started", None) is not None:
        return  # a quick stop ended the responses already
    worker.sse_stop_started = time.monotonic()
    ended = sum(state.shutdown() for state in _states(worker))
    log.info("worker %s stopping: ended %d stream responses", worker.pid, ended)


def post_worker_init(worker: Any) -> None:
    """gunicorn hook: attach at boot and schedule the guardian now."""
    state = _state(worker)
    if state is None:
        return
    attach(worker, state)
    state.start_background()


def worker_int(worker: Any) -> None:
    """gunicorn hook: a quick stop (``SIGINT``/``SIGQUIT``) ends the stream
    responses at once (the worker exits 0.1 s later) and waits for nothing."""
    worker.sse_quick_exit = True
    worker.sse_stop_started = time.monotonic()
    for state in _states_or_app(worker):
        state.shutdown()


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: give this worker's producers the rest of the grace period
    (not on a quick stop: their streams are left to the guardian)."""
    states = _states_or_app(worker)
    if getattr(worker, "sse_quick_exit", False):
        for state in states:
            state.shutdown()
        return
    started = getattr(worker, "sse_stop_started", None) or time.monotonic()
    deadline = started + worker.cfg.graceful_timeout - 1
    for state in states:
        state.shutdown(grace=max(0.0, deadline - time.monotonic()))
