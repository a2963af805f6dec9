"""Every transient Redis condition is an outage a producer rides out.

Each condition is provoked for real on private servers (a sleeping or paused
server, a restart loading a large dataset, a replica that refuses writes or
whose master is gone, too few replicas, a busy script): the test first sees
the error redis-py raises for it and checks the package counts it as
"unavailable" (:data:`~flask_sse_resilience.redisio.failures.UNAVAILABLE`), then
runs a producer through the condition and checks that every event landed
once, in order, and the stream completed. Cluster conditions (``CLUSTERDOWN``,
``TRYAGAIN``, ``ASK``/``MOVED``) are in ``tests/e2e/test_cluster_outages.py``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from flask import Flask
from redis.backoff import NoBackoff
from redis.retry import Retry

from flask_sse_resilience import SSEResilience, StreamState
from flask_sse_resilience.redisio.commands import RedisClient
from flask_sse_resilience.redisio.connect import make_client
from flask_sse_resilience.redisio.failures import (
    UNAVAILABLE,
    NodeInTransition,
    reply_error,
)
from harness.redis_server import RedisServer, free_port

DEBUG = ("--enable-debug-command", "yes")


def quick(url: str) -> RedisClient:
    """The package's client for ``url``, its reads timing out after 0.5 s."""
    client = make_client(url, max_connections=4)
    client.connection_pool.connection_kwargs["socket_timeout"] = 0.5
    return client


def app_on(client: RedisClient) -> tuple[Flask, SSEResilience]:
    app = Flask(__name__)
    app.config.update(
        SSE_RESILIENCE_HEARTBEAT_INTERVAL=1,
        SSE_RESILIENCE_STALE_THRESHOLD=3,
        SSE_RESILIENCE_GUARDIAN_ENABLED=False,
    )
    return app, SSEResilience(app, redis=client)


def bare(server: RedisServer) -> redis.Redis:
    """A plain client that never retries and waits 0.3 s for a reply: it
    shows the error a condition raises, not what retries made of it."""
    return redis.Redis(
        port=server.port, socket_timeout=0.3, retry=Retry(NoBackoff(), 0)
    )


def error_of(call: Callable[[], object]) -> BaseException:
    """The exception ``call`` raises (the test fails if it raises none)."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - returned for inspection
        return exc
    raise AssertionError("no error: the condition was not provoked")


class Generation:
    """A producer sending ``count`` events, 20 ms apart, in a thread, with
    the default retry (``SSE_RESILIENCE_PRODUCER_RETRY_FOR``)."""

    def __init__(self, sse: SSEResilience, app: Flask, sid: str, count: int) -> None:
        self.sse, self.app, self.sid, self.count = sse, app, sid, count
        self.sent = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with self.sse.producer(self.sid, app=self.app) as out:
                for i in range(self.count):
                    out.send("token", i)
                    self.sent = i + 1
                    time.sleep(0.02)
                out.complete({"n": self.count})
        except BaseException as exc:  # noqa: BLE001 - reported by check()
            self.error = exc

    def check(self, seconds: float = 60) -> None:
        """Join, then check every event landed once, in order."""
        self.thread.join(seconds)
        assert not self.thread.is_alive(), "the producer never finished"
        assert self.error is None, repr(self.error)
        events = self.sse.event_log(self.app).read(self.sid, None, 10_000)
        assert [e.data for e in events[:-1]] == list(range(self.count))
        assert events[-1].type == "completed"
        record = self.sse.get_stream(self.sid, app=self.app)
        assert record is not None and record.state is StreamState.COMPLETED


@pytest.fixture
def servers() -> Iterator[Callable[..., RedisServer]]:
    made: list[RedisServer] = []

    def start(*extra: str, wait: bool = True) -> RedisServer:
        made.append(RedisServer(None, *extra).start(wait=wait))
        return made[-1]

    yield start
    for server in made:
        server.cleanup()


def produce_through(
    server_url: str, provoke: Callable[[], BaseException], end: Callable[[], None]
) -> BaseException:
    """Start a generation, provoke the condition mid-way (returning the error
    redis-py raised for it), end it, and check the generation."""
    app, sse = app_on(quick(server_url))
    sid = sse.open_stream("alice", app=app)
    generation = Generation(sse, app, sid, 60)
    while generation.sent < 10:
        time.sleep(0.01)
    error = provoke()
    end()
    generation.check()
    app.extensions["sse_resilience"].close()
    return error


@pytest.mark.parametrize(
    "command", [("DEBUG", "SLEEP", 2), ("CLIENT", "PAUSE", 2000, "ALL")]
)
def test_a_sleeping_or_paused_server_is_a_timeout(
    servers: Callable[..., RedisServer], command: tuple[object, ...]
) -> None:
    server = servers(*DEBUG)
    admin = server.client()
    probe = bare(server)

    def provoke() -> BaseException:
        threading.Thread(target=admin.execute_command, args=command).start()
        time.sleep(0.1)
        return error_of(lambda: probe.set("probe", 1))

    error = produce_through(server.url, provoke, lambda: None)
    assert isinstance(error, redis.TimeoutError) and isinstance(error, UNAVAILABLE)


def test_a_restart_loading_a_large_dataset_is_loading(
    servers: Callable[..., RedisServer],
) -> None:
    server = servers(*DEBUG, "--dbfilename", "dump.rdb")
    admin = server.client()
    admin.execute_command("DEBUG", "POPULATE", 1_500_000)
    seen: list[BaseException] = []

    def provoke() -> BaseException:
        admin.save()  # the stream as it is now, and 1.5 M keys to load
        server.kill()
        server.start(wait=False)  # same port and directory: it loads dump.rdb
        probe = bare(server)
        while not seen:
            try:
                probe.ping()
            except redis.BusyLoadingError as exc:
                seen.append(exc)
            except redis.ConnectionError:
                time.sleep(0.005)  # not listening yet
            else:
                raise AssertionError("loaded before it was seen loading")
        probe.close()
        return seen[0]

    # The stream's events after the SAVE are lost with the restart; the
    # producer re-sends them (the log is behind it), so none is missing.
    error = produce_through(server.url, provoke, lambda: None)
    assert isinstance(error, redis.BusyLoadingError)
    assert isinstance(error, UNAVAILABLE)


def replica_of(
    servers: Callable[..., RedisServer], master: RedisServer, *extra: str
) -> RedisServer:
    replica = servers("--replicaof", "127.0.0.1", str(master.port), *extra)
    client = replica.client()
    while client.info("replication")["master_link_status"] != "up":
        time.sleep(0.02)
    return replica


def replicated(master: RedisServer) -> None:
    """Return once the replica has every write made so far. WAIT counts only
    its own connection's writes (a connection that wrote nothing returns at
    once, before the app's writes arrived: a race seen in the matrix), so
    write on it first; replication keeps order, so the earlier writes are
    there too."""
    client = master.client()
    client.incr("test:replicated")
    assert client.wait(1, 2000) == 1


def test_a_write_to_a_demoted_master_is_readonly(
    servers: Callable[..., RedisServer],
) -> None:
    """The app still talks to a node that is now a replica (as after a
    failover nobody told it about), until that node is promoted again."""
    master = servers()
    replica = replica_of(servers, master)
    app, sse = app_on(quick(master.url))
    sid = sse.open_stream("alice", app=app)
    replicated(master)  # the replica has the stream
    app.extensions["sse_resilience"].close()
    app, sse = app_on(quick(replica.url))
    error = error_of(lambda: bare(replica).set("probe", 1))
    assert isinstance(error, redis.ReadOnlyError) and isinstance(error, UNAVAILABLE)
    generation = Generation(sse, app, sid, 20)  # its claim meets READONLY
    time.sleep(1)
    assert generation.sent == 0
    replica.client().replicaof("NO", "ONE")  # promoted
    generation.check()


def test_a_replica_whose_master_is_gone_is_masterdown(
    servers: Callable[..., RedisServer],
) -> None:
    master = servers()
    replica = replica_of(servers, master, "--replica-serve-stale-data", "no")
    app, sse = app_on(quick(master.url))
    sid = sse.open_stream("alice", app=app)
    replicated(master)  # the replica has the stream
    app.extensions["sse_resilience"].close()
    master.kill()
    app, sse = app_on(quick(replica.url))
    client = replica.client()
    while client.info("replication")["master_link_status"] == "up":
        time.sleep(0.02)
    error = error_of(lambda: bare(replica).get("probe"))
    assert isinstance(error, redis.exceptions.MasterDownError)
    assert isinstance(error, UNAVAILABLE)
    generation = Generation(sse, app, sid, 20)
    time.sleep(1)
    assert generation.sent == 0
    client.replicaof("NO", "ONE")
    generation.check()


def test_too_few_replicas_is_noreplicas(servers: Callable[..., RedisServer]) -> None:
    server = servers()
    admin = server.client()

    def provoke() -> BaseException:
        admin.config_set("min-replicas-to-write", 1)
        raw = error_of(lambda: admin.set("probe", 1))
        assert str(raw).startswith("NOREPLICAS")
        time.sleep(1)
        return reply_error(raw)  # type: ignore[arg-type]

    error = produce_through(
        server.url, provoke, lambda: admin.config_set("min-replicas-to-write", 0)
    )
    assert isinstance(error, NodeInTransition) and isinstance(error, UNAVAILABLE)


def test_a_script_running_too_long_is_busy(servers: Callable[..., RedisServer]) -> None:
    server = servers()
    admin = server.client()
    admin.config_set("busy-reply-threshold", 100)
    spin = "local s = redis.call('TIME')[1] while redis.call('TIME')[1] - s < 2 do end"

    def provoke() -> BaseException:
        threading.Thread(target=server.client().eval, args=(spin, 0)).start()
        time.sleep(0.3)
        raw = error_of(lambda: admin.set("probe", 1))
        assert str(raw).startswith("BUSY")
        return reply_error(raw)  # type: ignore[arg-type]

    error = produce_through(server.url, provoke, lambda: None)
    assert isinstance(error, NodeInTransition) and isinstance(error, UNAVAILABLE)


def test_retries_leave_the_applications_random_alone() -> None:
    """Retries run in background threads (heartbeats, the guardian, the
    pub/sub link): their jitter comes from a generator of the library's own,
    so an app's seeded ``random`` (or Hypothesis drawing from it) never moves
    while Redis is away."""
    client = make_client(f"redis://127.0.0.1:{free_port()}/0", max_connections=1)
    random.seed(27)
    expected = random.getstate()
    with pytest.raises(redis.ConnectionError):
        client.ping()  # refused, then retried 4 times with jitter
    assert random.getstate() == expected
    client.close()
