"""Registry contents written straight to Redis, for tests and benchmarks that
need many streams fast."""

from __future__ import annotations

import redis

from flask_sse_resilience.models import RecordField as F
from flask_sse_resilience.store.keys import Keys

KEYS = Keys("sse:")


def fill(client: redis.Redis, active: int, stale_every: int) -> None:
    """``active`` active streams, every ``stale_every``-th one stale."""
    now_ms = int(client.time()[0]) * 1000
    pipe = client.pipeline(transaction=False)
    for i in range(active):
        sid = f"s{i}"
        beat = now_ms - 120_000 if i % stale_every == 0 else now_ms
        pipe.hset(
            KEYS.stream(sid),
            mapping={F.STREAM_ID: sid, F.USER_ID: "u", F.STATE: "active",
                     F.STARTED_AT: beat, F.LAST_HEARTBEAT: beat, F.SEQ: 0},
        )  # fmt: skip
        pipe.zadd(KEYS.active_of(sid), {sid: beat})
    pipe.execute()
