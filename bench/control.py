"""Cancel latency and key lookups, across hosts.

Host A is the demo under gunicorn (one gevent worker); host B is this process,
an app of its own on the same Redis, running the producers (one at a time,
sending a token every 20 ms and checking ``out.cancelled`` every 0.5 ms, as a
token loop would between tokens). A follower on host A reads the stream with
the Python client (httpx-sse). Each trial posts the cancel to host A and
measures, from just before the POST, until the producer on B sees it
(cancel-to-producer) and until the follower on A receives the ``cancelled``
event (cancel-to-follower: the producer then ends the stream with its partial
text). Two more series put the producer in a long call (no writes): one kills
every pub/sub connection just before the POST (``CLIENT KILL TYPE pubsub``),
one runs the producer without a pub/sub link, so only its heartbeat brings
the request. Key lookups are ``GET <prefix>/keys/<key>`` on host A.

``python -m bench.control`` runs it alone; the suite includes it.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import httpx
import redis as redis_py

from flask_sse_resilience import StreamCancelled
from flask_sse_resilience.client import follow
from harness.demo_server import Demo


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _produce(sse: Any, app: Any, sid: str, seen: dict[str, float], link: bool) -> None:
    producer = sse.producer(sid, app=app)
    if not link:
        producer._subscribe_cancels = None  # a process with no pub/sub link at all
    with producer as out:
        text, next_token = "", time.monotonic()
        try:
            while not out.cancelled:
                if time.monotonic() >= next_token and "quiet" not in seen:
                    out.send("token", {"text": "x"})
                    text += "x"
                    next_token += 0.02
                time.sleep(0.0005)
        except StreamCancelled:  # its next write was refused: that path won
            pass
        seen["producer"] = time.monotonic()
        out.cancel({"text": text})


def _follow(client: httpx.Client, url: str, seen: dict[str, float]) -> None:
    # Our Python client (httpx-sse underneath): it resumes by Last-Event-ID
    # when CLIENT KILL drops the serving worker's pub/sub link too.
    for event in follow(url, client=client, base_delay=0.05, read_timeout=30):
        if event.type == "token":
            seen.setdefault("following", time.monotonic())
        if event.type == "cancelled":
            seen["follower"] = time.monotonic()
            return


def _trial(
    sse: Any, app: Any, client: httpx.Client, mode: str, kill: redis_py.Redis
) -> dict[str, float]:
    """One cancel; ``mode``: ``fast`` (the pub/sub path), ``killed`` (every
    pub/sub connection killed just before, the producer in a long call),
    ``none`` (a producer without a pub/sub link, in a long call)."""
    sid = sse.open_stream("bench", app=app)
    seen: dict[str, float] = {}
    producer = threading.Thread(
        target=_produce, args=(sse, app, sid, seen, mode != "none")
    )
    follower = threading.Thread(
        target=_follow, args=(client, f"/sse/streams/{sid}", seen)
    )
    producer.start()
    follower.start()
    deadline = time.monotonic() + 10
    while "following" not in seen:  # the follower has live tokens
        if time.monotonic() > deadline:
            raise RuntimeError("the follower never received a token")
        time.sleep(0.005)
    time.sleep(0.05)
    if mode != "fast":
        seen["quiet"] = time.monotonic()  # in a long call: no writes from now
        time.sleep(0.03)
    while mode == "killed":
        if kill.execute_command("CLIENT", "KILL", "TYPE", "pubsub"):
            break
            time.sleep(0.005)
    asked = time.monotonic()
    answer = client.post(f"/sse/streams/{sid}/cancel", json={"reason": "bench"})
    assert answer.status_code == 202, answer.text
    producer.join(30)
    follower.join(30)
    return {
        "producer_ms": (seen["producer"] - asked) * 1000,
        "follower_ms": (seen["follower"] - asked) * 1000,
    }


def control_bench(redis_url: str, trials: int = 100) -> dict[str, Any]:
    """Run the series against a fresh demo on ``redis_url``; return the
    percentiles (ms)."""
    demo = Demo(redis_url, 1, {})
    app, sse = demo.producer_app()
    client = demo.client("bench")
    killer = redis_py.Redis.from_url(redis_url)
    try:
        series = {
            mode: [_trial(sse, app, client, mode, killer) for _ in range(count)]
            for mode, count in (
                ("fast", trials), ("killed", trials // 5), ("none", trials // 5)
            )
        }  # fmt: skip
        for i in range(trials):
            body = {"tokens": 1, "interval_ms": 0, "key": f"bench-{i}"}
            client.post("/generations", json=body).raise_for_status()
        lookups = []
        for i in range(trials * 2):
            started = time.monotonic()
            found = client.get(f"/sse/keys/bench-{i % trials}")
            lookups.append((time.monotonic() - started) * 1000)
            assert found.status_code == 200
        missing = client.get("/sse/keys/never-used")
        assert missing.status_code == 204
    finally:
        killer.close()
        demo.stop()
    result: dict[str, Any] = {
        "trials": trials,
        "heartbeat_s": float(demo.env["HEARTBEAT_INTERVAL"]),
        "lookup_p50_ms": statistics.median(lookups),
        "lookup_p99_ms": _pct(lookups, 0.99),
    }
    for name, runs in series.items():
        for what in ("producer_ms", "follower_ms"):
            values = [run[what] for run in runs]
            result[f"{name}_{what}_p50"] = statistics.median(values)
            result[f"{name}_{what}_p99"] = _pct(values, 0.99)
    return result


def control_section(r: dict[str, Any]) -> str:
    """The benchmark page's section for :func:`control_bench`'s result."""
    return f"""
## Cancel and keys

`bench/control.py`: host A is the demo under gunicorn (one gevent worker),
host B a separate app process on the same Redis running the producers (a
token every 20 ms, `out.cancelled` checked every 0.5 ms); a follower on host A
reads the stream with the Python client; each of {r["trials"]} trials posts the cancel
to host A. Two smaller series ({r["trials"] // 5} trials each) put the
producer in a long call (no writes, so a refused write cannot tell it):
*killed* kills every pub/sub connection (`CLIENT KILL TYPE pubsub`) just
before the POST, so the message is lost and the producer's link, once it has
reconnected, reads the flag; *no link* is a producer in a process that
follows nothing, which only its heartbeat can reach. Times from just before
the POST, in ms.

| measure | p50 | p99 |
| --- | ---: | ---: |
| cancel → producer on B (pub/sub fast path) | {r["fast_producer_ms_p50"]:.1f} | {r["fast_producer_ms_p99"]:.1f} |
| cancel → `cancelled` at the follower on A | {r["fast_follower_ms_p50"]:.1f} | {r["fast_follower_ms_p99"]:.1f} |
| cancel → producer, every pub/sub link killed just before | {r["killed_producer_ms_p50"]:.1f} | {r["killed_producer_ms_p99"]:.1f} |
| cancel → follower, every pub/sub link killed just before | {r["killed_follower_ms_p50"]:.1f} | {r["killed_follower_ms_p99"]:.1f} |
| cancel → producer with no pub/sub link (heartbeat {r["heartbeat_s"]:g} s) | {r["none_producer_ms_p50"]:.1f} | {r["none_producer_ms_p99"]:.1f} |
| `GET /sse/keys/<key>` on A | {r["lookup_p50_ms"]:.2f} | {r["lookup_p99_ms"]:.2f} |
"""  # noqa: E501


def main() -> None:
    """Run the cancel benchmark alone on a private Redis and print it."""
    from harness.redis_server import RedisServer

    server = RedisServer().start()
    try:
        print(control_section(control_bench(server.url)))
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
