from __future__ import annotations

import pytest
import redis
from flask import Flask

from flask_sse_resilience import ConfigurationError, SSEResilience
from flask_sse_resilience.errors import ConfigurationWarning
from flask_sse_resilience.settings import DEFAULTS, Settings, load_settings

from .conftest import AppFactory


def test_defaults_match_the_seed() -> None:
    s = load_settings({}, {})
    assert s == Settings()
    assert (s.heartbeat_interval, s.stale_threshold) == (15, 30)
    assert (s.stream_ttl, s.completion_ttl, s.guardian_interval) == (3600, 300, 30)
    assert (s.url_prefix, s.key_prefix) == ("/sse", "sse:")
    assert s.redis_url == "redis://localhost:6379/0"
    assert s.guardian_enabled is True
    assert DEFAULTS["SSE_RESILIENCE_MAX_EVENTS"] == 10_000


def test_strings_from_the_environment_are_accepted() -> None:
    s = load_settings(
        {
            "SSE_RESILIENCE_STREAM_TTL": "120",
            "SSE_RESILIENCE_HEARTBEAT_INTERVAL": "2.5",
            "SSE_RESILIENCE_GUARDIAN_ENABLED": "false",
        },
        {},
    )
    assert s.stream_ttl == 120 and s.heartbeat_interval == 2.5
    assert s.guardian_enabled is False


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SSE_RESILIENCE_STREAM_TTL", "soon"),
        ("SSE_RESILIENCE_STREAM_TTL", 1.5),
        ("SSE_RESILIENCE_MAX_EVENTS", 0),
        ("SSE_RESILIENCE_HEARTBEAT_INTERVAL", -1),
        ("SSE_RESILIENCE_GUARDIAN_ENABLED", "maybe"),
        ("SSE_RESILIENCE_URL_PREFIX", "sse"),
        ("SSE_RESILIENCE_KEY_PREFIX", ""),
        ("SSE_RESILIENCE_COMPLETION_TTL", True),
    ],
)
def test_bad_values_name_their_key(key: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=key):
        load_settings({key: value}, {})


def test_stale_threshold_must_exceed_heartbeat() -> None:
    with pytest.raises(ConfigurationError, match="SSE_RESILIENCE_STALE_THRESHOLD"):
        load_settings({"SSE_RESILIENCE_HEARTBEAT_INTERVAL": 30}, {})


def test_constructor_option_beats_config_beats_default() -> None:
    s = load_settings(
        {"SSE_RESILIENCE_STREAM_TTL": 100, "SSE_RESILIENCE_COMPLETION_TTL": 50},
        {"stream_ttl": 200},
    )
    assert s.stream_ttl == 200
    assert s.completion_ttl == 50
    assert s.max_events == 10_000


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="heartbeat_intervall"):
        SSEResilience(heartbeat_intervall=3)


def test_init_app_validates_at_startup() -> None:
    app = Flask(__name__)
    app.config["SSE_RESILIENCE_COMPLETION_TTL"] = "five minutes"
    with pytest.raises(ConfigurationError, match="SSE_RESILIENCE_COMPLETION_TTL"):
        SSEResilience(app)


def test_flask_compress_set_to_compress_event_streams_is_refused() -> None:
    app = Flask("compressed")
    app.config["COMPRESS_MIMETYPES"] = ["text/html", "text/event-stream"]
    with pytest.raises(ConfigurationError, match="COMPRESS_MIMETYPES"):
        SSEResilience(app, redis=redis.Redis(port=1))
    app.config["COMPRESS_STREAMS"] = False  # streams left alone: fine
    SSEResilience(app, redis=redis.Redis(port=1))


def test_flask_compress_leaves_streams_alone(make_app: AppFactory) -> None:
    """The real Flask-Compress with its defaults: pages compressed, event
    streams never (they arrive uncompressed, event by event)."""
    from flask_compress import Compress

    app, sse = make_app()
    Compress(app)
    app.add_url_rule("/page", "page", lambda: "x" * 5000)
    client = app.test_client()
    page = client.get("/page", headers={"Accept-Encoding": "gzip"})
    assert page.headers["Content-Encoding"] == "gzip"
    client.post("/test-login", json={"user": "alice"})
    sid = sse.open_stream("alice", app=app)
    response = client.get(
        f"/sse/streams/{sid}", headers={"Accept-Encoding": "gzip"}, buffered=False
    )
    assert "Content-Encoding" not in response.headers
    assert next(iter(response.response)).startswith(b"data: ")
    response.close()


def test_a_misspelt_key_is_warned_about_naming_the_nearest_one() -> None:
    app = Flask("typos")
    app.config.update(
        SSE_RESILIENCE_HEARTBEAT=5,
        SSE_RESILIENCE_URLPREFIX="/events",
        SSE_RESILIENCE_ZZZ=1,
    )
    with pytest.warns(ConfigurationWarning) as caught:
        SSEResilience(app, redis=redis.Redis(port=1))
    assert [str(w.message) for w in caught] == [
        "unknown config key SSE_RESILIENCE_HEARTBEAT is ignored; did you mean "
        "SSE_RESILIENCE_HEARTBEAT_INTERVAL?",
        "unknown config key SSE_RESILIENCE_URLPREFIX is ignored; did you mean "
        "SSE_RESILIENCE_URL_PREFIX?",
        "unknown config key SSE_RESILIENCE_ZZZ is ignored; no setting has a name "
        "like it",
    ]
    # Attributed to the app's own line, not to the package.
    assert {(w.filename, w.category) for w in caught} == {
        (__file__, ConfigurationWarning)
    }


def test_init_app_warns_at_the_apps_init_app_line() -> None:
    app = Flask("factory")
    app.config["SSE_RESILIENCE_HEARTBEAT_INTERVALL"] = 5
    sse = SSEResilience(redis=redis.Redis(port=1))
    with pytest.warns(ConfigurationWarning, match="HEARTBEAT_INTERVAL[?]") as caught:
        sse.init_app(app)
    assert caught[0].filename == __file__
