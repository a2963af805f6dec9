"""A client that vanishes without closing (half-open TCP) is released within
two heartbeat intervals.

Loopback never loses packets, so the client lives in a network namespace this
test makes (a veth pair on a private /30, torn down afterwards); removing its
address makes the server's keep-alives vanish unanswered, as when a laptop
drops off the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from flask_sse_resilience.store.keys import Keys
from harness.demo_server import DemoFactory

pytestmark = pytest.mark.e2e

HOST_IP, CLIENT_IP = "10.213.7.1", "10.213.7.2"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make a network namespace")
    name = f"sse-{uuid.uuid4().hex[:8]}"
    host, peer = f"vh{name[4:]}", f"vc{name[4:]}"
    ip("netns", "add", name)
    try:
        ip("link", "add", host, "type", "veth", "peer", "name", peer)
        ip("link", "set", peer, "netns", name)
        ip("addr", "add", f"{HOST_IP}/30", "dev", host)
        ip("link", "set", host, "up")
        ip("netns", "exec", name, "ip", "addr", "add", f"{CLIENT_IP}/30", "dev", peer)
        ip("netns", "exec", name, "ip", "link", "set", peer, "up")
        yield name
    finally:
        subprocess.run(["ip", "link", "del", host], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


KEYS = Keys("sse:")

CLIENT = """
import socket, sys, time
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])))
request = f"GET {sys.argv[3]} HTTP/1.1\\r\\nHost: x\\r\\nCookie: {sys.argv[4]}"
sock.sendall((request + "\\r\\n\\r\\n").encode())
head = b""
while b"connected" not in head:
    head += sock.recv(4096)
print("following", flush=True)
time.sleep(60)
"""


def test_a_vanished_client_is_released_within_two_heartbeats(
    demo_factory: DemoFactory, r: redis.Redis, netns: str
) -> None:
    demo = demo_factory(workers=1, extra_bind=HOST_IP)
    client = demo.client("alice")
    url = client.post("/generations", json={"tokens": 1, "interval_ms": 60_000}).json()[
        "streamUrl"
    ]
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    follower = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", CLIENT,
         HOST_IP, str(demo.port), url, cookie],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().strip() == "following"
        key = KEYS.stream_connections(url.rsplit("/", 1)[1])
        deadline = time.monotonic() + 5
        while r.zcard(key) != 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # The client's host drops off the network: no FIN, no RST, nothing.
        ip("netns", "exec", netns, "ip", "addr", "flush", "dev", f"vc{netns[4:]}")
        vanished = time.monotonic()
        while r.zcard(key) != 0:
            elapsed = time.monotonic() - vanished
            assert elapsed < 2 * 1.0 + 0.3, "half-open client still held"
            time.sleep(0.05)
        print(f"half-open client released {time.monotonic() - vanished:.2f}s later")
    finally:
        follower.kill()
        follower.wait(5)
        follower.stdout.close()
