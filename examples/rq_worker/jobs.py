"""The demo's generations as RQ jobs: the web app enqueues, ``rq worker`` produces.

Start a worker beside the demo (both on the same Redis)::

    FLASK_SSE_RESILIENCE_REDIS_URL=redis://127.0.0.1:6379/0 \\
      rq worker --url redis://127.0.0.1:6379/0 -P . \\
        -w rq.worker.SimpleWorker generations

and run the demo with ``DEMO_QUEUE_URL=redis://127.0.0.1:6379/0``: each
``POST /generations`` opens the stream in the web worker, then enqueues the job
here. The job's producer is an ordinary one: it heartbeats from the RQ process,
hears a cancel over that process's own pub/sub link (or its heartbeat), and
ends the stream with the text so far. If the RQ worker dies (``kill -9``), the
heartbeat stops and the guardian ends the stream ``orphaned``; a cancel
pressed before a worker picks the job up is seen when it starts.

``SimpleWorker`` runs jobs in the worker process; RQ's default ``Worker``
forks a work horse per job, which works the same (each horse makes its own
app), but a ``kill -9`` of the worker alone leaves its horse running.
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Flask

#: The queue the demo enqueues to and the worker listens on.
QUEUE = "generations"


@functools.cache
def _app() -> Flask:
    """This process's demo app (config from the ``FLASK_`` environment)."""
    from examples.demo.app import create_app

    return create_app()


def run_generation(stream_id: str, params: dict[str, Any]) -> None:
    """The job: produce the generation ``stream_id`` (see ``generate``)."""
    from examples.demo.app import generate

    generate(_app(), stream_id, **params)


@functools.cache
def _queue(url: str) -> Any:
    from redis import Redis
    from rq import Queue

    return Queue(QUEUE, connection=Redis.from_url(url))


def enqueue(url: str, stream_id: str, params: dict[str, Any]) -> None:
    """Hand the generation ``stream_id`` to the RQ workers on ``url``."""
    _queue(url).enqueue(
        run_generation, stream_id, params, job_timeout=3600, result_ttl=60
    )
