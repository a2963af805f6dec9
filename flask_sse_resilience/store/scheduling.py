"""The guardian's scheduler: one APScheduler interval job per process.

``GeventScheduler`` when gevent has patched the process (a gunicorn gevent
worker), else ``BackgroundScheduler``; ``max_instances=1`` and
``coalesce=True``, so a slow tick never overlaps the next, and the first tick
falls at a random point of the first interval, so a fleet's workers do not
tick in step. The schedulers log to this module's logger, which drops their
"skipped: maximum number of running instances" warnings: a tick slowed by a
Redis outage makes the next ones skip, by design, and the outage itself is
already one line (see :mod:`~flask_sse_resilience.redisio.outages`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from ..redisio.loops import gevent_patched

#: Our own generator: scheduling must not move the app's ``random`` state.
_jitter = random.Random()


class _SkippedTicks(logging.Filter):
    """Drops the scheduler's warning that a tick was skipped because the
    previous one still runs (``max_instances=1``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in str(record.msg)


log = logging.getLogger(__name__)
log.addFilter(_SkippedTicks())


def start_interval(job: Callable[[], None], seconds: float, name: str) -> Any:
    """Start a scheduler running ``job`` every ``seconds`` in this process;
    return it (stop it with ``shutdown(wait=False)``)."""
    scheduler: Any
    if gevent_patched("threading"):
        from apscheduler.schedulers.gevent import GeventScheduler

        scheduler = GeventScheduler(logger=log)
    else:
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler = BackgroundScheduler(daemon=True, logger=log)
    first = datetime.now() + timedelta(seconds=_jitter.uniform(0, seconds))
    scheduler.add_job(
        job,
        "interval",
        seconds=seconds,
        id=name,
        max_instances=1,
        coalesce=True,
        next_run_time=first,
        misfire_grace_time=None,
    )
    scheduler.start()
    return scheduler


def is_running(scheduler: Any) -> bool:
    """Whether a started scheduler's thread (or greenlet) still runs."""
    runner = getattr(scheduler, "_thread", None) or getattr(
        scheduler, "_greenlet", None
    )
    if runner is None:
        return False
    if hasattr(runner, "is_alive"):
        return bool(runner.is_alive())
    return not runner.dead
