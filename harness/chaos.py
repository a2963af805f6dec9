"""Chaos runs: many concurrent generations on a real Redis topology, served by
two app hosts (two gunicorn masters with gevent workers), while a seeded random
schedule of faults runs. Shared by ``tests/e2e/test_chaos.py`` (short runs in
``make test``) and ``bench/chaos.py`` (``make chaos``, minutes, figures into
``docs/benchmarks.md``).

Each generation is produced by the demo on one host and followed on the other
by an httpx-sse client that reconnects with ``Last-Event-ID`` as a browser
does. At the end every stream must have completed (no producer dies here) with
every token once and in order; an ``orphaned`` end is a false orphan. Once the
completion TTL and the connection leases have run out, Redis must hold nothing
but the guardian's, the dashboard's and the shards' watch keys; and every
background loop of every worker must still run (checked through what each
writes to Redis).
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import redis

from flask_sse_resilience.store.keys import Keys
from harness.demo_server import Demo
from harness.follower import Follower
from harness.topology_faults import Faults

KEYS = Keys("sse:")

#: Keys that outlive streams by design (guardian lock and sweep record,
#: dashboard counters, the shards' watches).
KEPT = ("{guardian}", "{stats}", ":watch")

#: App-host settings for chaos runs: short TTLs, so leftovers show quickly.
HOST_ENV = {
    # Longer than an outage plus a client's reconnect backoff: a client that
    # comes back after the end must still find the stream.
    "FLASK_SSE_RESILIENCE_COMPLETION_TTL": "10",
    "FLASK_SSE_RESILIENCE_MAX_STREAMS_PER_USER": "1000",
    "FLASK_SSE_RESILIENCE_MAX_CONNECTIONS_PER_USER": "1000",
}


@dataclasses.dataclass
class Outcome:
    """What one chaos run saw; all of ``lost`` .. ``leftovers`` must be 0."""

    topology: str
    seed: int
    seconds: float = 0.0
    streams: int = 0
    events: int = 0
    lost: int = 0
    doubled: int = 0
    false_orphans: int = 0
    failed: int = 0
    leftovers: list[str] = dataclasses.field(default_factory=list)
    loops_dead: list[str] = dataclasses.field(default_factory=list)
    faults: Counter[str] = dataclasses.field(default_factory=Counter)
    resets: int = 0
    reconnects: int = 0

    @property
    def clean(self) -> bool:
        """True when every invariant held."""
        return not (
            self.lost or self.doubled or self.false_orphans or self.failed
            or self.leftovers or self.loops_dead
        )  # fmt: skip

    def summary(self) -> str:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        return (
            f"chaos {self.topology} seed={self.seed}: {self.streams} streams, "
            f"{self.events} events, faults [{faults}] in {self.seconds:.0f}s; "
            f"lost {self.lost}, doubled {self.doubled}, false orphans "
            f"{self.false_orphans}, failed {self.failed}, leftover keys "
            f"{len(self.leftovers)}, dead loops {len(self.loops_dead)} "
            f"({self.reconnects} reconnects, {self.resets} resets)"
            + (f"; left: {self.leftovers[:3]}" if self.leftovers else "")
            + (f"; dead: {self.loops_dead}" if self.loops_dead else "")
        )


@dataclasses.dataclass
class Tracked:
    url: str
    tokens: int
    follower: Follower


def start_generation(host: Demo, follow_on: Demo, client: httpx.Client,
                     tokens: int, interval_ms: int) -> Tracked:  # fmt: skip
    """POST a generation to ``host`` (retrying through 503s and resets) and
    follow it from ``follow_on``, falling back to ``host``."""
    deadline = time.monotonic() + 60
    while True:
        try:
            response = client.post(
                "/generations", json={"tokens": tokens, "interval_ms": interval_ms}
            )
            if response.status_code == 201:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "could not start a generation"
        time.sleep(0.2)
    url = response.json()["streamUrl"]
    follower = Follower([follow_on.base, host.base], url, client.cookies)
    return Tracked(url, tokens, follower)


def judge(tracked: list[Tracked], outcome: Outcome) -> None:
    """Check each followed stream; add what went wrong to ``outcome``."""
    for item in tracked:
        events = item.follower.join(120)
        tokens = item.follower.tokens()
        if not tokens and [e["type"] for e in events] == ["completed"]:
            # It first reached the stream after the end: a client without a
            # cursor gets the result at once (the protocol's "recover"),
            # whose text must hold every token, in order.
            words = events[0]["data"]["text"].split()
            if words == [f"token{i}" for i in range(item.tokens)]:
                tokens = list(range(item.tokens))
        outcome.streams += 1
        outcome.events += len(tokens)
        outcome.resets += item.follower.resets
        outcome.reconnects += max(0, item.follower.connections - 1)
        counts = Counter(tokens)
        outcome.doubled += sum(n - 1 for n in counts.values() if n > 1)
        missing = [i for i in range(item.tokens) if i not in counts]
        outcome.lost += len(missing)
        if missing:
            print(f"  {item.url}: {len(missing)} of {item.tokens} tokens missing "
                  f"(first {missing[:5]}), {len(events)} events, "
                  f"{item.follower.connections} connections, gone "
                  f"{item.follower.gone}, last {str(events[-1:])[:80]}")  # fmt: skip
        if tokens != sorted(tokens):
            outcome.doubled += 1  # out of order counts as a fault too
        ends = [e for e in events if e["type"] in ("completed", "failed")]
        if len(ends) != 1 or ends[0]["type"] != "completed":
            reason = ends[-1]["data"] if ends else "no end"
            if isinstance(reason, dict) and reason.get("reason") == "orphaned":
                outcome.false_orphans += 1
            else:
                outcome.failed += 1
            print(f"  {item.url}: ended {ends!r}")


def leftovers(client: Any, wait: float) -> list[str]:
    """Keys still in Redis once streams ended and ``wait`` seconds passed."""
    time.sleep(wait)
    found = [str(k) for k in client.scan_iter("sse:*", count=1000)]
    return sorted(k for k in found if not any(mark in k for mark in KEPT))


def loops_dead(client: Any, hosts: list[Demo], user: str = "loops") -> list[str]:
    """Which background loops did not write what they write: a final
    generation's heartbeats and lease renewals, the guardian's sweeps, each
    worker's dashboard report."""
    dead = []
    sweeps = int(client.get(KEYS.guardian_sweeps) or 0)
    http = hosts[0].client(user)
    item = start_generation(hosts[0], hosts[1], http, 150, 30)
    sid = item.url.rsplit("/", 1)[1]
    time.sleep(0.5)
    lease_key = KEYS.user_connections(user)
    first_beat = int(client.hget(KEYS.stream(sid), "lastHeartbeat") or 0)
    leases = client.zrange(lease_key, 0, -1, withscores=True)
    first_lease = max((score for _, score in leases), default=0)
    time.sleep(3.2)  # three heartbeat intervals
    if int(client.hget(KEYS.stream(sid), "lastHeartbeat") or 0) <= first_beat:
        dead.append("heartbeat")
    renewed = client.zrange(lease_key, 0, -1, withscores=True)
    if not renewed or max(s for _, s in renewed) <= first_lease:
        dead.append("lease renewal")
    if int(client.get(KEYS.guardian_sweeps) or 0) <= sweeps:
        dead.append("guardian")
    now_ms = int(time.time() * 1000)
    reports = client.hgetall(KEYS.stats_workers)
    for host in hosts:
        for pid in host.workers():
            fresh = [v for k, v in reports.items() if k.endswith(f":{pid}")]
            if (
                not fresh
                or now_ms - int(fresh[0].split('"at": ')[1].rstrip("}")) > 4000
            ):
                dead.append(f"stats of worker {pid}")
    events = item.follower.join(60)
    if item.follower.tokens() != list(range(150)) or events[-1]["type"] != "completed":
        dead.append("live delivery")
    return dead


def run(
    faults: Faults,
    hosts: list[Demo],
    *,
    seconds: float,
    seed: int,
    concurrent: int = 10,
) -> Outcome:
    """Keep ``concurrent`` generations live for ``seconds`` while faults
    strike every 1.5-4 s (seeded), then heal and check every invariant."""
    print(f"chaos on {faults.name}: seed {seed}", flush=True)
    faults.heal()  # every replica in sync before the first fault
    rng = random.Random(seed)
    outcome = Outcome(faults.name, seed)
    started = time.monotonic()
    stop = threading.Event()
    tracked: list[Tracked] = []
    clients = [host.client(f"chaos{i}") for i, host in enumerate(hosts)]

    def strike() -> None:
        while not stop.wait(rng.uniform(1.5, 4.0)):
            outcome.faults[faults.strike(rng)] += 1

    striker = threading.Thread(target=strike, daemon=True)
    striker.start()
    while time.monotonic() - started < seconds:
        live = [t for t in tracked if not t.follower.done.is_set()]
        for _ in range(concurrent - len(live)):
            i = rng.randrange(len(hosts))
            tracked.append(start_generation(
                hosts[i], hosts[1 - i], clients[i],
                rng.randint(80, 250), rng.randint(15, 40),
            ))  # fmt: skip
        time.sleep(0.2)
    stop.set()
    striker.join(60)
    faults.heal()
    judge(tracked, outcome)
    outcome.seconds = time.monotonic() - started
    checker = faults.client()
    try:
        # Completion TTL (10 s) and three heartbeats of leases, with margin.
        outcome.leftovers = leftovers(checker, 14.0)
        outcome.loops_dead = loops_dead(checker, hosts)
    finally:
        checker.close()
    print(outcome.summary(), flush=True)
    return outcome


def failover_series(
    faults: Faults, hosts: list[Demo], *, cycles: int, seed: int
) -> tuple[Outcome, list[float]]:
    """Fail over the master serving a live stream's slot ``cycles`` times, one
    generation produced on the first host and followed on the second each
    time; return the outcome and, per failover, the seconds from the kill to
    the follower's next token."""
    print(f"failovers on {faults.name}: seed {seed}", flush=True)
    faults.heal()
    rng = random.Random(seed)
    outcome = Outcome(f"{faults.name} failovers", seed)
    started = time.monotonic()
    gaps: list[float] = []
    client = hosts[0].client("failovers")
    for cycle in range(cycles):
        item = start_generation(hosts[0], hosts[1], client, 100, rng.randint(15, 25))
        sid = item.url.rsplit("/", 1)[1]
        follower = item.follower
        wait_until(lambda f=follower: len(f.tokens()) >= 20, 30)  # type: ignore[misc]
        seen = len(follower.tokens())
        killed = time.monotonic()
        outcome.faults[faults.fail_over(KEYS.stream(sid))] += 1
        wait_until(lambda f=follower, n=seen: len(f.tokens()) > n, 60)  # type: ignore[misc]
        gaps.append(time.monotonic() - killed)
        judge([item], outcome)
        faults.heal()
        print(f"  failover {cycle + 1}/{cycles}: next token after "
              f"{gaps[-1]:.2f}s", flush=True)  # fmt: skip
    outcome.seconds = time.monotonic() - started
    print(outcome.summary(), flush=True)
    return outcome, gaps


def wait_until(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def keys_client(url: str) -> Any:
    """A client that scans every master (a cluster client on a cluster)."""
    if url.startswith("redis+cluster://"):
        host = url.split("://", 1)[1].split("/", 1)[0]
        return redis.RedisCluster.from_url(f"redis://{host}", decode_responses=True)
    return redis.Redis.from_url(url, decode_responses=True)
