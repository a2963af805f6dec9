from __future__ import annotations

import redis
from flask import Flask

from flask_sse_resilience.store.keys import Keys

from .conftest import AppFactory

KEYS = Keys("sse:")


def setup_streams(make_app: AppFactory, r: redis.Redis) -> tuple[Flask, dict[str, str]]:
    app, sse = make_app()
    ids = {
        "active": sse.open_stream("alice", stream_type="chat", app=app),
        "stale": sse.open_stream("bob", stream_type="job", app=app),
        "done": sse.open_stream("carol", app=app),
    }
    with sse.producer(ids["done"], app=app) as out:
        out.complete({"ok": 1})
    r.hset(KEYS.stream(ids["stale"]), "lastHeartbeat", 0)
    r.zadd(KEYS.active_of(ids["stale"]), {ids["stale"]: 0})
    return app, ids


def test_streams_sweep_show_and_stats(make_app: AppFactory, r: redis.Redis) -> None:
    app, ids = setup_streams(make_app, r)
    runner = app.test_cli_runner()

    listed = runner.invoke(args=["sse", "streams"])
    assert listed.exit_code == 0, listed.output
    assert ids["active"][:24] in listed.output and ids["stale"][:24] in listed.output
    assert ids["done"][:24] not in listed.output
    assert "2 stream(s)" in listed.output

    swept = runner.invoke(args=["sse", "sweep"])
    assert swept.exit_code == 0
    assert "orphaned 1, pruned 0" in swept.output and ids["stale"] in swept.output

    orphaned = runner.invoke(args=["sse", "streams", "--state", "orphaned"])
    assert ids["stale"][:24] in orphaned.output and "1 stream(s)" in orphaned.output
    everything = runner.invoke(args=["sse", "streams", "--state", "all"])
    assert "3 stream(s)" in everything.output

    # "--": a random id may start with "-"
    shown = runner.invoke(args=["sse", "show", "--", ids["done"]])
    assert shown.exit_code == 0
    assert "completed" in shown.output and "{'ok': 1}" in shown.output
    missing = runner.invoke(args=["sse", "show", "nope"])
    assert missing.exit_code != 0 and "no stream 'nope'" in missing.output

    stats = runner.invoke(args=["sse", "stats"])
    assert stats.exit_code == 0
    lines = dict(line.split(None, 1) for line in stats.output.strip().splitlines())
    assert lines["active"] == "1" and lines["orphaned"] == "1"
    assert lines["completed"] == "1" and lines["failed"] == "0"
    assert "orphaned 1, pruned 0" in lines["sweeps"]


def test_cli_without_the_extension_says_so() -> None:
    app = Flask(__name__)
    from flask_sse_resilience.cli import sse_cli

    app.cli.add_command(sse_cli)
    result = app.test_cli_runner().invoke(args=["sse", "stats"])
    assert result.exit_code != 0
    assert "does not use SSEResilience" in result.output


def test_cancel_from_a_shell(make_app: AppFactory, r: redis.Redis) -> None:
    app, ids = setup_streams(make_app, r)
    runner = app.test_cli_runner()
    asked = runner.invoke(args=["sse", "cancel", ids["active"], "--reason", "ops"])
    assert asked.exit_code == 0 and "cancelling" in asked.output
    shown = runner.invoke(args=["sse", "show", ids["active"]])
    assert "{'reason': 'ops', 'by': 'app'}" in shown.output
    dead = runner.invoke(args=["sse", "cancel", ids["stale"]])  # silent producer
    assert dead.exit_code == 0 and ": cancelled" in dead.output
    ended = runner.invoke(args=["sse", "cancel", ids["done"]])
    assert ended.exit_code == 1 and "had ended completed" in ended.output
    missing = runner.invoke(args=["sse", "cancel", "nope"])
    assert missing.exit_code == 1 and "no stream" in missing.output
    long = runner.invoke(args=["sse", "cancel", ids["active"], "--reason", "x" * 201])
    assert long.exit_code == 1 and "200" in long.output
