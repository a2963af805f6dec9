"""Run as a program under gevent: many producers in one process, sending back
to back, plus a bare pool of the package's client hammered by PINGs.

``python -m tests.fairness_probe <redis-url> <producers> <events>`` prints one
JSON line: how many streams completed and failed (with the errors seen), the
largest heartbeat age any stream reached while they ran, and the bare pool's
error count. Used by ``tests/test_pool.py``.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

import gevent  # noqa: E402
from flask import Flask  # noqa: E402

from flask_sse_resilience import SSEResilience, StreamState  # noqa: E402
from flask_sse_resilience.redisio.connect import make_client  # noqa: E402


def bare_pool(url: str, greenlets: int, calls: int) -> int:
    """PINGs in tight loops (no yield between calls) through a pool of 4."""
    client = make_client(url, max_connections=4)
    errors = 0

    def loop() -> None:
        nonlocal errors
        for _ in range(calls):
            try:
                client.ping()
            except Exception:  # noqa: BLE001 - counted
                errors += 1

    gevent.joinall([gevent.spawn(loop) for _ in range(greenlets)])
    return errors


def main() -> None:
    url, producers, events = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    app = Flask(__name__)
    app.config.update(
        SSE_RESILIENCE_REDIS_URL=url,
        SSE_RESILIENCE_HEARTBEAT_INTERVAL=1,
        SSE_RESILIENCE_STALE_THRESHOLD=3,
        SSE_RESILIENCE_GUARDIAN_INTERVAL=1,
        SSE_RESILIENCE_PRODUCER_RETRY_FOR=0,  # a pool timeout must show
    )
    sse = SSEResilience(app)
    ids: list[str] = []
    errors: Counter[str] = Counter()

    def produce(user: str) -> None:
        # Each opens its stream and produces at once, as a view does: 500
        # streams opened up front would age past the stale threshold on a
        # loaded machine before their producers got to run.
        try:
            sid = sse.open_stream(user, app=app)
            ids.append(sid)
            with sse.producer(sid, app=app) as out:
                for i in range(events):
                    out.send("token", i)  # back to back: no yield between
                out.complete({"n": events})
        except Exception as exc:  # noqa: BLE001 - counted
            errors[f"{type(exc).__name__}: {exc}"] += 1

    sse.guardian(app).start()  # sweeping the whole time, in this process
    worst_age = 0.0
    started = time.monotonic()
    jobs = [gevent.spawn(produce, f"user{i % 50}") for i in range(producers)]
    registry = sse.registry(app)
    while not all(job.dead for job in jobs):
        gevent.sleep(0.5)
        now_ms = int(registry.redis.time()[0]) * 1000  # type: ignore[index]
        for record in registry.get_many(ids):
            if record.state is StreamState.ACTIVE:
                age = now_ms / 1000 - record.last_heartbeat.timestamp()
                worst_age = max(worst_age, age)
    seconds = time.monotonic() - started
    states = Counter(r.state.value for r in registry.get_many(ids))
    print(
        json.dumps(
            {
                "states": states,
                "errors": errors,
                "seconds": round(seconds, 2),
                "worst_heartbeat_age": round(worst_age, 2),
                "bare_pool_errors": bare_pool(url, 250, 200),
            }
        )
    )
    app.extensions["sse_resilience"].close()


if __name__ == "__main__":
    main()
