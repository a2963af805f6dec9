"""Cancellation end to end: two "hosts" (two gunicorn demos with gevent workers)
on one Redis, read with httpx-sse (a client we did not write)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import redis
from httpx_sse import connect_sse

from flask_sse_resilience import StreamCancelled
from harness.demo_server import Demo, DemoFactory

pytestmark = pytest.mark.e2e


@pytest.fixture
def hosts(demo_factory: DemoFactory, r: redis.Redis) -> tuple[Demo, Demo]:
    return demo_factory(), demo_factory()


def read_all(client: httpx.Client, url: str, into: list[dict[str, Any]]) -> None:
    """Follow ``url`` to its end with httpx-sse, collecting the envelopes."""
    import json

    with connect_sse(client, "GET", url, timeout=httpx.Timeout(10, read=30)) as source:
        for sse in source.iter_sse():
            if sse.event == "message" and sse.data:  # not the keep-alives
                envelope = json.loads(sse.data)
                into.append(envelope)
                if envelope["type"] in ("completed", "failed", "cancelled"):
                    return


def test_cancel_on_host_a_stops_a_producer_on_host_b(hosts: tuple[Demo, Demo]) -> None:
    a, b = hosts
    on_b = b.client("alice")
    started = on_b.post(
        "/generations",
        json={"prompt": "x", "tokens": 2000, "interval_ms": 10, "key": "chat-9"},
    )
    assert started.status_code == 201
    sid, url = started.json()["streamId"], started.json()["streamUrl"]
    on_a = a.client("alice")
    got: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    readers = [
        threading.Thread(target=read_all, args=(on_a, url, got["a"])),
        threading.Thread(target=read_all, args=(b.client("alice"), url, got["b"])),
    ]
    for reader in readers:
        reader.start()
    time.sleep(0.5)
    answer = on_a.post(f"/sse/streams/{sid}/cancel", json={"reason": "stop"})
    assert answer.status_code == 202
    for reader in readers:
        reader.join(15)
    for host, events in got.items():
        kinds = [e["type"] for e in events]
        assert kinds.count("cancelled") == 1, host
        assert kinds[-1] == "cancelled" and kinds[0] == "connected", host
    end = got["a"][-1]["data"]
    assert (end["reason"], end["by"]) == ("stop", "user")
    # No token was logged after the producer saw the request: its partial
    # text is exactly the tokens every follower received.
    for events in got.values():
        tokens = "".join(e["data"]["text"] for e in events if e["type"] == "token")
        assert tokens == end["partial"]["text"]
    assert 0 < len(end["partial"]["text"]) < len("x0 ") * 2000
    # The key finds it again, ended; host A and B agree.
    for client in (on_a, on_b):
        found = client.get("/sse/keys/chat-9").json()
        assert found["streamId"] == sid and found["status"] == "cancelled"


def test_cancel_before_the_producer_starts(demo: Demo) -> None:
    app, sse = demo.producer_app()
    sid = sse.open_stream("alice", app=app)
    client = demo.client("alice")
    assert client.post(f"/sse/streams/{sid}/cancel", json={}).status_code == 202
    with sse.producer(sid, app=app) as out:
        assert out.cancelled  # on entering
    assert sse.get_completion(sid, app=app).terminal_event_type == "cancelled"


def test_cancel_with_the_producers_pubsub_link_killed(
    demo: Demo, r: redis.Redis
) -> None:
    """The fast path is lost: the heartbeat (1 s in the demo) brings it."""
    app, sse = demo.producer_app()
    sid = sse.open_stream("alice", app=app)
    client = demo.client("alice")
    with sse.producer(sid, app=app) as out:
        out.send("token", {"text": "a"})
        deadline = time.monotonic() + 5  # its listener subscribes on its thread
        while not r.execute_command("CLIENT", "KILL", "TYPE", "pubsub"):
            assert time.monotonic() < deadline, "the producer never subscribed"
            time.sleep(0.01)
        asked = time.monotonic()
        assert client.post(f"/sse/streams/{sid}/cancel", json={}).status_code == 202
        while not out.cancelled:
            assert time.monotonic() - asked < 3, "not even the heartbeat brought it"
            time.sleep(0.01)
        took = time.monotonic() - asked
        out.cancel({"text": "a"})
    assert took < 1 + 0.5  # within one heartbeat interval
    assert sse.get_completion(sid, app=app).terminal_event_type == "cancelled"


def test_an_ignored_cancel_is_fenced(demo: Demo) -> None:
    app, sse = demo.producer_app()
    sid = sse.open_stream("alice", app=app)
    client = demo.client("alice")
    events: list[dict[str, Any]] = []
    reader = threading.Thread(
        target=read_all, args=(demo.client("alice"), f"/sse/streams/{sid}", events)
    )
    reader.start()
    with sse.producer(sid, app=app) as out:
        out.send("token", {"text": "a"})
        out.flush()  # written (a send still held would wait for the end)
        asked = time.monotonic()
        client.post(f"/sse/streams/{sid}/cancel", json={})
        reader.join(15)  # the demo's guardian fences it after 3 s (the grace)
        fenced = time.monotonic() - asked
        out._flag.request = False  # it was stuck and never looked
        with pytest.raises(StreamCancelled):
            out.send("token", {"text": "late"})
            out.flush()  # held for its window, then refused
    assert 3 <= fenced < 3 + 2.5
    assert [e["type"] for e in events] == ["connected", "token", "cancelled"]


def test_foreign_users_and_cross_site_posts_cancel_nothing(demo: Demo) -> None:
    started = demo.client("alice").post("/generations", json={"tokens": 50})
    sid = started.json()["streamId"]
    mallory = demo.client("mallory")
    assert mallory.post(f"/sse/streams/{sid}/cancel", json={}).status_code == 404
    victim = demo.client("alice")
    form = victim.post(
        f"/sse/streams/{sid}/cancel",
        content="reason=csrf",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": "http://evil.example",
            "Sec-Fetch-Site": "cross-site",
        },
    )
    assert form.status_code == 403
    assert victim.get(f"/sse/streams/{sid}/recover").json()["status"] == "active"


@pytest.mark.parametrize("policy", ["reject", "join", "cancel"])
def test_concurrent_opens_of_one_key(demo: Demo, policy: str) -> None:
    clients = [demo.client("alice") for _ in range(8)]
    body = {
        "tokens": 200,
        "interval_ms": 20,
        "key": f"k-{policy}",
        "on_conflict": policy,
    }
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda c: c.post("/generations", json=body), clients))
    codes = sorted(a.status_code for a in answers)
    ids = {a.json()["streamId"] for a in answers}
    states = {
        sid: clients[0].get(f"/sse/streams/{sid}/recover").json()["status"]
        for sid in ids
    }
    assert list(states.values()).count("active") == 1, states
    if policy == "reject":
        assert codes.count(201) == 1 and codes.count(409) == 7
        assert len(ids) == 1  # every refusal names the winner
    elif policy == "join":
        assert codes.count(201) == 1 and codes.count(200) == 7 and len(ids) == 1
    else:
        assert set(states.values()) <= {"active", "cancelled"}
