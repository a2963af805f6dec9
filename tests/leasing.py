"""Taking a connection lease on its own, as the request path does inside its
shared pipeline (see ``flask_sse_resilience.serve.admission``)."""

from __future__ import annotations

from typing import Any

from flask_sse_resilience.redisio.commands import run_pipeline
from flask_sse_resilience.store.leases import ConnectionLeases


def acquire(leases: ConnectionLeases, user_id: str) -> str | None:
    """Take a lease for ``user_id``: its id, or None at the limit."""
    asked: list[str] = []

    def build(pipe: Any) -> None:
        # Run twice if the script was not loaded yet: keep the last id.
        asked[:] = [leases.queue_acquire(pipe, user_id)]

    replies = run_pipeline(leases.redis, build)
    return leases.granted(user_id, asked[0], replies[0])
