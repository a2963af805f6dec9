"""Every mistake a new user makes gets one short message naming its cause and
its fix (issue 24): Redis unreachable, a CLI command without Redis, a wrong
database number, and ``flask sse check``. Each on a real, private
redis-server; never the machine's Redis on 6379."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from flask import Flask
from redis.backoff import NoBackoff
from redis.retry import Retry

from flask_sse_resilience import SSEResilience, StreamNotActiveError
from flask_sse_resilience.redisio.health import eviction_finding, version_finding
from flask_sse_resilience.redisio.target import Target, explain, mask_url
from flask_sse_resilience.state import get_state
from harness.redis_server import RedisServer, free_port
from harness.redis_topologies import ClusterFixture, SentinelFixture

from .conftest import AppFactory
from .streams import login

OUTAGES = "flask_sse_resilience.redisio.outages"
COMMANDS = [["streams"], ["show", "x"], ["sweep"], ["cancel", "x"], ["stats"]]


def ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Warnings and errors the package logged."""
    return [
        r
        for r in caplog.records
        if r.name.startswith("flask_sse_resilience") and r.levelno >= logging.WARNING
    ]


def wait_for(check: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# Redis unreachable: one line per outage, URL masked, cause, and when back.


def test_an_outage_is_one_log_line_with_the_masked_url_and_the_cause(
    make_app: AppFactory,
    redis_factory: Callable[[], RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = redis_factory()
    server.client().config_set("requirepass", "s3cret")
    url = f"redis://:s3cret@127.0.0.1:{server.port}/0"
    # Everything that meets Redis runs through the outage: the guardian
    # (ticking every 0.14 s here), a producer's heartbeats (0.3 s), a
    # follower's pub/sub link and lease renewal. Any of them logging per tick
    # would add dozens of lines.
    app, sse = make_app({"SSE_RESILIENCE_REDIS_URL": url})
    sid = sse.open_stream("alice", app=app)
    producer = sse.producer(sid, app=app, retry_for=0)
    producer.__enter__()
    producer.send("token", 1)
    client = app.test_client()
    login(client, "alice")
    follower = client.get(f"/sse/streams/{sid}", buffered=False)
    frames = iter(follower.response)
    assert b"connected" in next(frames)
    assert get_state(app).guardian.running

    server.kill()
    for _ in range(3):
        answer = client.get(f"/sse/streams/{sid}/recover")
        assert answer.status_code == 503
        assert answer.json["error"] == "redis_unavailable"
    time.sleep(1)  # seven guardian ticks, a heartbeat or two

    # Nothing else either: no skipped-tick warning of the guardian's scheduler.
    assert [r.name for r in caplog.records if r.levelno >= logging.WARNING] == [OUTAGES]
    lines = [r.getMessage() for r in ours(caplog)]
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"Redis at redis://:***@127.0.0.1:{server.port}/0 (SSE_RESILIENCE_REDIS_URL) "
        "is unreachable (ConnectionError: "
    )
    assert "Connection refused" in lines[0]
    assert lines[0].endswith(
        "Connection refused.); check that Redis runs there and that "
        "SSE_RESILIENCE_REDIS_URL is right (requests get 503 until it is back)"
    )
    assert not any("s3cret" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in ours(caplog))  # no traceback

    server.start()
    server.client().config_set("requirepass", "s3cret")
    wait_for(lambda: not get_state(app).outages.down)
    back = ours(caplog)[-1]
    assert back.name == OUTAGES
    assert back.getMessage().startswith(
        f"Redis at redis://:***@127.0.0.1:{server.port}/0 (SSE_RESILIENCE_REDIS_URL) "
        "is back after "
    )
    assert client.get(f"/sse/streams/{sid}/recover").status_code == 404  # data lost
    follower.close()
    with pytest.raises(StreamNotActiveError):  # Redis came back empty
        producer.__exit__(None, None, None)

    server.kill()  # a second outage: a line of its own
    assert client.get(f"/sse/streams/{sid}/recover").status_code == 503
    assert len(ours(caplog)) == 3
    assert get_state(app).outages.count == 2


def test_the_default_url_is_named_as_the_default() -> None:
    """No URL configured: the line says the default is in use and which key
    to set (checked without connecting: the default is the machine's
    6379)."""
    app = Flask("no_url")
    SSEResilience(app)
    target = get_state(app).target
    assert str(target) == (
        "redis://localhost:6379/0 (the default; set SSE_RESILIENCE_REDIS_URL)"
    )
    closed = redis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.ConnectionError) as refused:
        closed.ping()
    assert explain(refused.value, target).endswith(
        "Connection refused.); start Redis there, or set "
        "SSE_RESILIENCE_REDIS_URL to your Redis's URL"
    )
    get_state(app).close()


def test_a_ready_client_is_described_without_its_password(
    redis_factory: Callable[[], RedisServer],
) -> None:
    server = redis_factory()
    app = Flask("ready")
    SSEResilience(app, redis=redis.Redis(port=server.port, password="pw", db=2))
    target = get_state(app).target
    assert str(target) == f"redis://:***@localhost:{server.port}/2 (redis=)"
    assert target.setting == "the client passed as redis="
    get_state(app).close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:secret@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://user:p@ss/w@h:1/2", "rediss://user:***@h:1/2"),
        ("redis://h:1/0?password=x&db=1", "redis://h:1/0?password=***&db=1"),
        ("redis+sentinel://:pw@a:1,b:2/m/0", "redis+sentinel://:***@a:1,b:2/m/0"),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)
def test_passwords_are_masked(url: str, shown: str) -> None:
    assert mask_url(url) == shown


# CLI errors: one line and exit 1, never a traceback.


def test_every_cli_command_without_redis_says_one_line(
    make_app: AppFactory, redis_factory: Callable[[], RedisServer]
) -> None:
    server = redis_factory()
    app, _ = make_app({"SSE_RESILIENCE_REDIS_URL": server.url})
    server.kill()
    runner = app.test_cli_runner()
    for command in COMMANDS:
        result = runner.invoke(args=["sse", *command])
        assert result.exit_code == 1, (command, result.output)
        assert isinstance(result.exception, SystemExit)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, (command, result.output)
        assert lines[0].startswith(
            f"Error: Redis at {server.url} (SSE_RESILIENCE_REDIS_URL) is unreachable "
            "(ConnectionError: "
        )
        assert lines[0].endswith(
            "Connection refused.); check that Redis runs there and that "
            "SSE_RESILIENCE_REDIS_URL is right"
        )


def test_a_wrong_password_is_named_as_such(
    make_app: AppFactory, redis_factory: Callable[[], RedisServer]
) -> None:
    server = redis_factory()
    server.client().config_set("requirepass", "right")
    app, _ = make_app(
        {"SSE_RESILIENCE_REDIS_URL": f"redis://:wrong@127.0.0.1:{server.port}/0"}
    )
    result = app.test_cli_runner().invoke(args=["sse", "streams"])
    assert result.exit_code == 1
    assert result.output.startswith(
        f"Error: Redis at redis://:***@127.0.0.1:{server.port}/0 "
        "(SSE_RESILIENCE_REDIS_URL) refused the credentials (AuthenticationError: "
    )
    assert result.output.endswith(
        "; check the user name and password in SSE_RESILIENCE_REDIS_URL\n"
    )
    assert ":wrong@" not in result.output


APP = textwrap.dedent(
    """
    import os
    from flask import Flask
    from flask_sse_resilience import SSEResilience, StreamNotActiveError

    app = Flask(__name__)
    app.config["SSE_RESILIENCE_REDIS_URL"] = os.environ["TEST_REDIS_URL"]
    SSEResilience(app, identity=lambda: None)
    """
)


def flask_cli(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``flask --app <a file app> sse <args>``, as a user runs it."""
    (tmp_path / "cliapp.py").write_text(APP)
    env = {**os.environ, "TEST_REDIS_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "cliapp", "sse", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_flask_sse_stats_without_redis_in_a_real_shell(
    tmp_path: Path, redis_factory: Callable[[], RedisServer]
) -> None:
    server = redis_factory()
    url = f"redis://:hunter2@127.0.0.1:{server.port}/0"
    server.kill()
    result = flask_cli(tmp_path, url, "stats")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        f"Error: Redis at redis://:***@127.0.0.1:{server.port}/0 "
        "(SSE_RESILIENCE_REDIS_URL) is unreachable (ConnectionError: Error 111 "
    )


# A wrong database number.


def test_a_wrong_database_is_named_with_the_ones_redis_has(
    make_app: AppFactory,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/99"
    expected = (
        f"Redis at {url} (SSE_RESILIENCE_REDIS_URL) has no database 99; it has 16 "
        "(its databases setting), numbered 0-15: fix the database number in "
        "SSE_RESILIENCE_REDIS_URL"
    )
    app, _ = make_app({"SSE_RESILIENCE_REDIS_URL": url})
    client = app.test_client()
    login(client, "alice")
    for _ in range(2):
        answer = client.get("/sse/streams/abc/recover")
        assert answer.status_code == 503  # not a 500 with a ResponseError
        assert answer.json["error"] == "redis_unavailable"
    assert [r.getMessage() for r in ours(caplog)] == [
        f"{expected} (requests get 503 until it is back)"
    ]

    result = app.test_cli_runner().invoke(args=["sse", "stats"])
    assert (result.exit_code, result.output) == (1, f"Error: {expected}\n")
    checked = flask_cli(tmp_path, url, "check")
    assert checked.returncode == 1
    assert checked.stdout == f"FAIL reachable: {expected}\n"


# flask sse check


def test_check_a_healthy_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    result = flask_cli(tmp_path, redis_server.url, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "ok   reachable",
        "ok   version",
        "ok   writable",
        "ok   eviction",
    ]
    assert lines[0].startswith(
        f"ok   reachable: {redis_server.url} (SSE_RESILIENCE_REDIS_URL), PING "
    )
    assert "(needs 6.2 or newer)" in lines[1]
    assert lines[3] == (
        "ok   eviction: no maxmemory set: nothing is evicted (maxmemory-policy "
        "noeviction)"
    )


def test_check_warns_about_eviction_and_fails_on_a_replica(
    make_app: AppFactory, redis_factory: Callable[[], RedisServer]
) -> None:
    server = redis_factory()
    app, _ = make_app({"SSE_RESILIENCE_REDIS_URL": server.url})
    admin = server.client()
    runner = app.test_cli_runner()
    for policy in ("allkeys-lru", "volatile-ttl"):
        admin.config_set("maxmemory", "100mb")
        admin.config_set("maxmemory-policy", policy)
        result = runner.invoke(args=["sse", "check"])
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[-1] == (
            f"WARN eviction: maxmemory-policy {policy} can evict live streams when "
            "memory is full, and their followers then end failed (lost) "
            "mid-stream (each stream's keys carry a TTL, so volatile-* "
            "policies can too); set maxmemory-policy noeviction: a full Redis "
            "then refuses writes (answered 503 redis_out_of_memory) and loses "
            "nothing"
        )
        assert runner.invoke(args=["sse", "check", "--strict"]).exit_code == 1
    admin.config_set("maxmemory-policy", "noeviction")
    assert (
        "ok   eviction: maxmemory-policy noeviction"
        in runner.invoke(args=["sse", "check"]).output
    )

    master = redis_factory()
    admin.replicaof("127.0.0.1", master.port)
    result = runner.invoke(args=["sse", "check"])
    assert result.exit_code == 1
    writable = result.output.splitlines()[2]
    assert writable.startswith(
        f"FAIL writable: Redis at {server.url} (SSE_RESILIENCE_REDIS_URL) is a "
        "read-only replica (ReadOnlyError: "
    )
    assert writable.endswith(
        "point SSE_RESILIENCE_REDIS_URL at the master (or at the sentinels, "
        "redis+sentinel://, to follow failovers)"
    )


def test_check_refuses_a_redis_too_old() -> None:
    """The version rule itself (the machine has one Redis version to run)."""
    assert version_finding({"master": "7.0.15"}, cluster=False).level == "ok"
    old = version_finding({"master": "6.0.16"}, cluster=False)
    assert (old.level, old.text) == (
        "fail",
        "Redis 6.2 or newer is needed, found 6.0.16 at master; upgrade Redis",
    )
    cluster = version_finding({"a:1": "7.0.1", "b:2": "6.2.14"}, cluster=True)
    assert cluster.level == "fail" and "Redis Cluster 7.0 or newer" in cluster.text
    assert "6.2.14 at b:2" in cluster.text
    unlimited = eviction_finding({"master": ("allkeys-lru", 0)})
    assert unlimited.level == "ok" and "nothing is evicted" in unlimited.text


@pytest.mark.topology
def test_check_a_cluster_checks_every_master(
    cluster: ClusterFixture, tmp_path: Path
) -> None:
    result = flask_cli(tmp_path, cluster.url, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   writable: set, read and deleted a key under 'sse:' on 3 masters" in (
        result.stdout
    )
    assert "(needs 7.0 or newer)" in result.stdout


@pytest.mark.topology
def test_check_through_sentinels(sentinel: SentinelFixture, tmp_path: Path) -> None:
    result = flask_cli(tmp_path, sentinel.url, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   writable" in result.stdout


def test_targets_say_which_setting_chose_them() -> None:
    assert Target.of("redis://h/0", {}, {"redis_url": "x"}).setting == (
        "SSEResilience(redis_url=...)"
    )
    config = {"SSE_RESILIENCE_REDIS_URL": "redis://h/0"}
    assert str(Target.of("redis://h/0", config, {})) == (
        "redis://h/0 (SSE_RESILIENCE_REDIS_URL)"
    )
