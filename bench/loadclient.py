"""The load client: one gevent process holding many SSE connections.

Driven over stdin/stdout, one JSON object per line:

* ``{"cmd": "connect", "port": P, "path": "/...", "n": N, "cookie": "..."}``
  opens N connections (GET, HTTP/1.1), answers ``{"opened": k, "failed": f}``;
* ``{"cmd": "reset"}`` forgets received events;
* ``{"cmd": "stats"}`` answers ``{"alive": a, "events": {k: [count, last]},
  "latencies": [...]}`` where k is the event's ``"k"`` and last its latest
  arrival (epoch s), latencies ``arrival - t`` for events carrying ``"t"``;
* ``{"cmd": "follow", "port": P, "paths": [...], "cookie": "..."}`` opens one
  connection per path (a path may repeat), each tracking its own events:
  ``{"cmd": "follow_stats"}`` answers, per connection, ``[path index,
  received, doubled, skipped, last k]`` and the latency percentiles;
* ``{"cmd": "close"}`` closes every connection; ``{"cmd": "quit"}`` exits.

Events are recognised by a ``"k":<int>`` in their data line (and ``"t":<float>``
for latency), whatever server framed them, so one client measures all three
servers the same way.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from gevent.fileobject import FileObjectPosix  # noqa: E402
from gevent.pool import Pool  # noqa: E402

EVENT = re.compile(rb'"k": ?(\d+)(?:, ?"t": ?([0-9.]+))?')

connections: list[socket.socket] = []
alive: set[int] = set()
counts: dict[int, int] = {}
last: dict[int, float] = {}
latencies: list[float] = []


def reader(index: int, sock: socket.socket) -> None:
    buffer = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            now = time.time()
            buffer += chunk
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                match = EVENT.search(frame)
                if match is None:
                    continue
                k = int(match.group(1))
                counts[k] = counts.get(k, 0) + 1
                last[k] = now
                if match.group(2):
                    latencies.append(now - float(match.group(2)))
    except OSError:
        pass
    finally:
        alive.discard(index)


#: Per followed connection: path index, received, doubled, skipped, last k.
followed: list[list[int]] = []
follow_latencies: list[float] = []


def follower(entry: list[int], sock: socket.socket) -> None:
    buffer = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            now = time.time()
            buffer += chunk
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                match = EVENT.search(frame)
                if match is None:
                    continue
                k = int(match.group(1))
                entry[1] += 1
                if k <= entry[4]:
                    entry[2] += 1
                else:
                    entry[3] += k - entry[4] - 1
                    entry[4] = k
                if match.group(2):
                    follow_latencies.append(now - float(match.group(2)))
    except OSError:
        pass


def follow(port: int, paths: list[str], cookie: str) -> dict[str, int]:
    failed = 0

    def one(index: int) -> None:
        nonlocal failed
        request = (
            f"GET {paths[index]} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Accept: text/event-stream\r\nCookie: {cookie}\r\n\r\n"
        ).encode()
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.settimeout(None)
            sock.sendall(request)
        except OSError:
            failed += 1
            return
        entry = [index, 0, 0, 0, -1]
        followed.append(entry)
        connections.append(sock)
        gevent.spawn(follower, entry, sock)

    Pool(200).map(one, range(len(paths)))
    gevent.sleep(0.5)
    return {"opened": len(paths) - failed, "failed": failed}


def follow_stats() -> dict[str, Any]:
    gevent.sleep(0)
    ordered = sorted(follow_latencies) or [0.0]
    return {
        "conns": followed,
        "p50": ordered[len(ordered) // 2],
        "p99": ordered[int(len(ordered) * 0.99)],
        "max": ordered[-1],
    }


def connect(port: int, path: str, n: int, cookie: str) -> dict[str, int]:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        f"Cookie: {cookie}\r\n\r\n"
    ).encode()
    failed = 0

    def one(_: int) -> None:
        nonlocal failed
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.settimeout(None)
            sock.sendall(request)
        except OSError:
            failed += 1
            return
        index = len(connections)
        connections.append(sock)
        alive.add(index)
        gevent.spawn(reader, index, sock)

    Pool(200).map(one, range(n))
    gevent.sleep(0.5)  # let the server answer the last ones
    return {"opened": n - failed, "failed": failed}


def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # Read commands cooperatively: a plain blocking read of stdin would
    # freeze every reader greenlet while we wait for the next command.
    stdin = FileObjectPosix(sys.stdin.fileno(), "rb")
    for line in stdin:
        command: dict[str, Any] = json.loads(line)
        cmd = command["cmd"]
        reply: dict[str, Any] = {}
        if cmd == "connect":
            reply = connect(command["port"], command["path"], command["n"],
                            command.get("cookie", ""))  # fmt: skip
        elif cmd == "reset":
            counts.clear()
            last.clear()
            latencies.clear()
        elif cmd == "stats":
            gevent.sleep(0)
            reply = {
                "alive": len(alive),
                "events": {k: [counts[k], last[k]] for k in counts},
                "latencies": latencies,
            }
        elif cmd == "follow":
            reply = follow(command["port"], command["paths"], command.get("cookie", ""))
        elif cmd == "follow_stats":
            reply = follow_stats()
        elif cmd == "close":
            for sock in connections:
                sock.close()
            connections.clear()
            alive.clear()
            followed.clear()
            follow_latencies.clear()
            gevent.sleep(0.2)
        elif cmd == "quit":
            return
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
