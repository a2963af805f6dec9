from __future__ import annotations

from datetime import datetime

import pytest
import redis
from flask import Flask

from flask_sse_resilience import SSEResilience, StreamIdTaken
from flask_sse_resilience.state import State
from flask_sse_resilience.store.keys import Keys
from harness.redis_server import RedisServer


def test_factory_pattern_and_state_location(redis_server: RedisServer) -> None:
    sse = SSEResilience()
    apps = []
    for prefix in ("/sse", "/events"):
        app = Flask(__name__)
        app.config["SSE_RESILIENCE_REDIS_URL"] = redis_server.url
        app.config["SSE_RESILIENCE_URL_PREFIX"] = prefix
        sse.init_app(app)
        assert isinstance(app.extensions["sse_resilience"], State)
        apps.append(app)
    rules = {str(rule) for rule in apps[1].url_map.iter_rules()}
    assert "/events/streams/<stream_id>" in rules
    assert "/events/streams/<stream_id>/recover" in rules
    with pytest.raises(RuntimeError, match="pass app="):
        sse.open_stream("alice")  # two apps, no context: ambiguous
    with apps[0].app_context():
        sid = sse.open_stream("alice")
    assert sse.get_stream(sid, app=apps[0]) is not None
    for app in apps:
        app.extensions["sse_resilience"].close()


def test_second_init_app_is_refused(redis_server: RedisServer) -> None:
    app = Flask(__name__)
    SSEResilience(app)
    with pytest.raises(RuntimeError, match="already has an SSEResilience"):
        SSEResilience(app)


def test_a_ready_client_is_used_as_is(r: redis.Redis) -> None:
    app = Flask(__name__)
    app.config["SSE_RESILIENCE_KEY_PREFIX"] = "myapp:"
    sse = SSEResilience(app, redis=r)
    assert app.extensions["sse_resilience"].redis is r
    sid = sse.open_stream("alice")
    assert r.exists(Keys("myapp:").stream(sid))


def test_open_stream_ids(r: redis.Redis) -> None:
    app = Flask(__name__)
    sse = SSEResilience(app, redis=r)
    made = {sse.open_stream("alice") for _ in range(50)}
    assert len(made) == 50 and all(len(sid) >= 22 for sid in made)  # 128 bits
    assert sse.open_stream("alice", stream_id="job-1") == "job-1"
    with pytest.raises(StreamIdTaken):
        sse.open_stream("bob", stream_id="job-1")
    for bad in ("", "a b", "x" * 129, "../etc", "a{b}"):
        with pytest.raises(ValueError):
            sse.open_stream("alice", stream_id=bad)
    with pytest.raises(ValueError):
        sse.open_stream("")


def test_metadata_that_is_not_json_names_the_key(r: redis.Redis) -> None:
    app = Flask(__name__)
    sse = SSEResilience(app, redis=r)
    with pytest.raises(ValueError) as refused:
        sse.open_stream("alice", metadata={"model": "m", "when": datetime.now()})
    assert str(refused.value) == (
        "stream metadata must be JSON-serializable: metadata['when'] is a "
        "datetime (convert it first, say with .isoformat())"
    )
    assert isinstance(refused.value.__cause__, TypeError)
    with pytest.raises(ValueError, match=r"metadata\['tags'\]\[1\] is a set$"):
        sse.open_stream("alice", metadata={"tags": ["a", {"b"}]})
    with pytest.raises(ValueError, match="^metadata must be a dict of JSON values"):
        sse.open_stream("alice", metadata=["not", "a", "dict"])  # type: ignore[arg-type]
    assert r.keys("*") == []  # nothing written, nothing counted


def test_identity_loader_decorator(r: redis.Redis) -> None:
    sse = SSEResilience(redis=r)
    app = Flask(__name__)
    sse.init_app(app)
    sid = sse.open_stream("alice")

    client = app.test_client()
    with pytest.raises(RuntimeError, match="identity"):
        app.testing = True
        client.get(f"/sse/streams/{sid}/recover")

    @sse.identity_loader
    def who() -> str:
        return "alice"

    assert client.get(f"/sse/streams/{sid}/recover").json["status"] == "active"


def test_missing_init_app_has_a_helpful_error() -> None:
    sse = SSEResilience()
    with pytest.raises(RuntimeError, match="did you forget init_app"):
        sse.open_stream("alice")


def test_a_client_returning_bytes_works_too(redis_server: RedisServer) -> None:
    from flask import session

    from .streams import login, open_stream, read, types

    raw = redis.Redis(port=redis_server.port)  # decode_responses=False
    app = Flask(__name__)
    app.secret_key = "x"
    sse = SSEResilience(app, redis=raw, identity=lambda: session.get("user"))

    @app.post("/test-login")
    def test_login() -> str:
        from flask import request

        session["user"] = request.get_json()["user"]
        return "ok"

    sid = sse.open_stream("alice")
    with sse.producer(sid) as out:
        out.send("token", {"t": "ü"})
    client = app.test_client()
    login(client, "alice")
    assert client.get(f"/sse/streams/{sid}/recover").json["status"] == "completed"
    log = sse.event_log().read(sid, None)
    events, _ = read(open_stream(client, f"/sse/streams/{sid}", log[0].id))
    assert types(events) == ["connected", "completed"]
    assert sse.get_stream(sid).state.value == "completed"
    raw.close()
