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
  received, doubled, skipped, last k]``, the latency percentiles and the
  errors (connections refused or answered other than 200);
* ``{"cmd": "drop"}`` closes every followed connection, keeping its place;
* ``{"cmd": "rejoin", "port": P, "paths": [...], "cookie": "..."}`` closes
  every followed connection and reopens them all at once with their
  Last-Event-ID, answering ``{"started": epoch}``; ``{"cmd": "caught_up",
  "targets": [k per path], "since": epoch, "seconds": S}`` waits until every
  connection has its path's event ``k`` and answers ``{"seconds": ...}``;
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
from collections.abc import Iterator  # noqa: E402
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


def frames(
    sock: socket.socket, *, refused: Any = None
) -> Iterator[tuple[float, re.Match[bytes], bytes]]:
    """Each event frame (one carrying a ``"k"``) the socket brings, with its
    arrival time and match, until the peer closes; with ``refused``, a
    response other than 200 brings none and calls it."""
    buffer = b""
    first = refused is not None
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return
            if first:
                first = False
                if not chunk.startswith(b"HTTP/1.1 200"):
                    refused()
                    return
            now = time.time()
            buffer += chunk
            if b"\r" in buffer:  # CRLF line ends (sse-starlette's): the same frames
                buffer = buffer.replace(b"\r\n", b"\n")
            *complete, buffer = buffer.split(b"\n\n")
            for frame in complete:
                match = EVENT.search(frame)
                if match is not None:
                    yield now, match, frame
    except OSError:
        return


def reader(index: int, sock: socket.socket) -> None:
    try:
        for now, match, _ in frames(sock):
            k = int(match.group(1))
            counts[k] = counts.get(k, 0) + 1
            last[k] = now
            if match.group(2):
                latencies.append(now - float(match.group(2)))
    finally:
        alive.discard(index)


#: Per followed connection: path index, received, doubled, skipped, last k,
#: and (not in replies) its last event id.
followed: list[list[Any]] = []
follow_latencies: list[float] = []
ID = re.compile(rb"^id: ?(\S+)", re.MULTILINE)
follow_errors = 0


def _refused() -> None:
    global follow_errors
    follow_errors += 1


def follower(entry: list[Any], sock: socket.socket) -> None:
    for now, match, frame in frames(sock, refused=_refused):
        event_id = ID.search(frame)
        if event_id is not None:
            entry[5] = event_id.group(1).decode()
        k = int(match.group(1))
        entry[1] += 1
        if k <= entry[4]:
            entry[2] += 1
        else:
            entry[3] += k - entry[4] - 1
            entry[4] = k
        if match.group(2):
            follow_latencies.append(now - float(match.group(2)))


def open_follower(port: int, path: str, cookie: str, entry: list[Any]) -> bool:
    """Connect ``entry``'s connection (resuming after its last id); False if
    the connection could not be made."""
    global follow_errors
    resume = f"Last-Event-ID: {entry[5]}\r\n" if entry[5] else ""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Accept: text/event-stream\r\nCookie: {cookie}\r\n{resume}\r\n"
    ).encode()
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.settimeout(None)
        sock.sendall(request)
    except OSError:
        follow_errors += 1
        return False
    connections.append(sock)
    gevent.spawn(follower, entry, sock)
    return True


def follow(port: int, paths: list[str], cookie: str) -> dict[str, int]:
    entries = [[index, 0, 0, 0, -1, ""] for index in range(len(paths))]
    followed.extend(entries)
    opened = Pool(200).map(
        lambda e: open_follower(port, paths[e[0]], cookie, e), entries
    )
    gevent.sleep(0.5)
    return {"opened": sum(opened), "failed": len(paths) - sum(opened)}


def drop() -> None:
    """Close every followed connection (their places are kept)."""
    for sock in connections:
        sock.close()
    connections.clear()
    gevent.sleep(0.2)


def rejoin(port: int, paths: list[str], cookie: str) -> dict[str, Any]:
    """Reconnect every followed connection at once, each with its
    Last-Event-ID (as after a worker restart)."""
    drop()
    started = time.time()
    gevent.joinall([
        gevent.spawn(open_follower, port, paths[e[0]], cookie, e) for e in followed
    ])  # fmt: skip
    return {"started": started}


def caught_up(targets: list[int], since: float, seconds: float) -> dict[str, Any]:
    """Wait until every followed connection has event ``targets[i]`` of its
    path ``i``; answer the seconds from ``since`` (or None) and errors."""
    deadline = time.monotonic() + seconds
    while any(e[4] < targets[e[0]] for e in followed):
        if time.monotonic() > deadline:
            return {"seconds": None, "errors": follow_errors}
        gevent.sleep(0.01)
    return {"seconds": time.time() - since, "errors": follow_errors}


def follow_stats() -> dict[str, Any]:
    gevent.sleep(0)
    ordered = sorted(follow_latencies) or [0.0]
    return {
        "conns": [e[:5] for e in followed],
        "p50": ordered[len(ordered) // 2],
        "p99": ordered[int(len(ordered) * 0.99)],
        "max": ordered[-1],
        "errors": follow_errors,
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
        elif cmd == "drop":
            drop()
        elif cmd == "rejoin":
            reply = rejoin(command["port"], command["paths"], command.get("cookie", ""))
        elif cmd == "caught_up":
            reply = caught_up(command["targets"], command["since"], command["seconds"])
        elif cmd == "close":
            for sock in connections:
                sock.close()
            connections.clear()
            alive.clear()
            followed.clear()
            follow_latencies.clear()
            global follow_errors
            follow_errors = 0
            gevent.sleep(0.2)
        elif cmd == "quit":
            return
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
