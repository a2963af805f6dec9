"""Bench helper process: read one SSE stream to its end and report timings.

Usage: python -m bench.reader BASE_URL STREAM_URL COOKIE
Prints one JSON line: events received, first/last arrival times (epoch s),
token indexes lost and doubled.
"""

from __future__ import annotations

import json
import sys
import time

import httpx
from httpx_sse import connect_sse


def main() -> None:
    base, url, cookie = sys.argv[1:4]
    seen: list[int] = []
    first = last = 0.0
    with httpx.Client(base_url=base, timeout=60, headers={"Cookie": cookie}) as client:
        with connect_sse(client, "GET", url) as source:
            print("ready", flush=True)
            for event in source.iter_sse():
                if event.event == "heartbeat":
                    continue
                envelope = json.loads(event.data)
                if envelope["type"] == "token":
                    last = time.time()
                    first = first or last
                    seen.append(envelope["data"]["i"])
                elif envelope["type"] in ("completed", "failed"):
                    break
    expected = range(max(seen) + 1 if seen else 0)
    report = {
        "count": len(seen),
        "first": first,
        "last": last,
        "doubled": len(seen) - len(set(seen)),
        "lost": len(set(expected) - set(seen)),
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
