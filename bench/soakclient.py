"""Soak helper process: follow many streams at once with the Python client,
dropping connections at random and resuming by Last-Event-ID.

Usage: python -m bench.soakclient BASE COOKIE DROP_PROB < stream ids (one per
line). Prints one JSON object: {stream id: [k, k, ...] in arrival order}.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
import httpx  # noqa: E402

from flask_sse_resilience.client import follow  # noqa: E402


def main() -> None:
    base, cookie, drop = sys.argv[1], sys.argv[2], float(sys.argv[3])
    ids = [line.strip() for line in sys.stdin if line.strip()]
    received: dict[str, list[int]] = {sid: [] for sid in ids}
    drops = 0
    limits = httpx.Limits(max_connections=len(ids) + 50, max_keepalive_connections=0)
    http = httpx.Client(base_url=base, headers={"Cookie": cookie}, limits=limits,
                        timeout=httpx.Timeout(30.0, read=120.0))  # fmt: skip

    def one(sid: str) -> None:
        nonlocal drops
        last: str | None = None
        while True:
            dropped = False
            for event in follow(f"/sse/streams/{sid}", client=http, last_event_id=last,
                                base_delay=0.2):  # fmt: skip
                last = event.id or last
                if event.type == "token":
                    received[sid].append(event.data["k"])
                if event.terminal:
                    return
                if random.random() < drop:
                    dropped = True
                    drops += 1
                    break  # hang up; resume below from `last`
            if not dropped:
                return

    gevent.joinall([gevent.spawn(one, sid) for sid in ids], raise_error=True)
    sys.stdout.write(json.dumps({"received": received, "drops": drops}) + "\n")


if __name__ == "__main__":
    main()
