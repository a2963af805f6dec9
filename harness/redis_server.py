"""Private redis-server processes for tests: free loopback port, no persistence.

Each server is started from the ``redis-server`` binary and stopped by its PID,
so tests may kill, restart or pause it without touching any other Redis.
"""

from __future__ import annotations

import fcntl
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

#: Ports handed out by :func:`free_port`: below Linux's ephemeral range
#: (32768-60999), so no outgoing connection takes one between the pick and
#: the server's bind.
PORTS = range(20000, 32000)
_LOCKS = Path(tempfile.gettempdir()) / "sse-resilience-test-ports"
#: The lock files this process holds, one per port it was given; the kernel
#: drops the locks when the process ends, however it ends.
_held: list[int] = []


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on and that no
    other process using this function (a parallel test worker, a benchmark)
    has been given; this process is never given the same port twice."""
    _LOCKS.mkdir(exist_ok=True)
    start = random.randrange(len(PORTS))
    for offset in range(len(PORTS)):
        port = PORTS[(start + offset) % len(PORTS)]
        fd = os.open(_LOCKS / str(port), os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if _bindable(port):
            _held.append(fd)
            return port
        os.close(fd)
    raise RuntimeError(f"no free port left in {PORTS.start}-{PORTS.stop - 1}")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class RedisServer:
    """One private redis-server; ``url`` stays the same across restarts."""

    def __init__(
        self, port: int | None = None, *extra: str, config: str | None = None
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed; `make test` installs it "
                "(apt-get install redis-server)"
            )
        self.binary = binary
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="sse-redis-")
        self.extra = extra
        #: A config file to start from (a sentinel needs one it can rewrite).
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.clients: list[redis.Redis] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A client of this server, closed at :meth:`cleanup`."""
        client = redis.Redis(port=self.port, decode_responses=True)
        self.clients.append(client)
        return client

    def start(self, wait: bool = True) -> RedisServer:
        """Start the server; with ``wait``, return once it answers PING
        (which, for a server loading a dataset, is once it has loaded)."""
        self.proc = subprocess.Popen(
            [
                self.binary,
                *([self.config] if self.config else []),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", self.dir,
                "--maxclients", "20000",
                "--loglevel", "warning",
                # A replica syncs at once, not after Redis's default 5 s wait
                # for more replicas: a failover soon after a (re)start must
                # not promote a replica that holds nothing yet.
                "--repl-diskless-sync-delay", "0",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if not wait:
            return self
        deadline = time.monotonic() + 30
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        while True:
            try:
                probe.ping()
                break
            except redis.exceptions.MasterDownError:
                break  # up: a replica that serves nothing until it syncs
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    msg = f"redis-server on {self.port} did not start"
                    raise RuntimeError(msg) from None
                time.sleep(0.02)
            finally:
                probe.close()
        return self

    def stop(self) -> None:
        """Terminate the server (SIGKILL if it lingers) and wait for it."""
        if self.proc is None:
            return
        self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        if self.proc is not None:
            self.resume()
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections hang instead of failing."""
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def cleanup(self) -> None:
        for client in self.clients:
            client.close()
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
