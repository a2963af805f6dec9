"""Chromium's own EventSource receives every tricky payload as one event,
byte for byte, from the demo under gunicorn."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.demo_server import Demo, DemoFactory

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

TRICKY: list[Any] = [
    "line\nbreak",
    "carriage\rreturn",
    "crlf\r\nend",
    "\n\n\n",
    "id: 999-0\nevent: evil\nretry: 1\ndata: {}",
    "\ufeffleading BOM",
    ": not a comment",
    "lone \udc80 surrogate",
    "\u2028\u2029 separators",
    "nul \x00 byte",
    {"nested": ["\r\n", {"k": "data: x"}], "emoji": "🧪", "n": -1.5e300},
    "",
    None,
    "x" * 60_000,
]

PAGE = """
async (url) => {
  await fetch("/login", {method: "POST", headers: {"Content-Type": "application/json"},
                         body: JSON.stringify({user: "alice"})});
  window.received = [];
  window.finished = false;
  window.connected = false;
  const source = new EventSource(url);
  source.onmessage = (msg) => {
    const envelope = JSON.parse(msg.data);
    if (envelope.type === "connected") { window.connected = true; return; }
    // Well-formed JSON.stringify escapes lone surrogates, so Python can
    // compare the exact code units.
    window.received.push({id: msg.lastEventId, type: envelope.type,
                          data: JSON.stringify(envelope.data)});
    if (envelope.type === "completed") { source.close(); window.finished = true; }
  };
}
"""


def test_chromium_gets_tricky_data_byte_identical(
    demo_factory: DemoFactory, page: Any
) -> None:
    demo: Demo = demo_factory()
    app, sse = demo.producer_app()
    sid = sse.open_stream("alice")
    page.goto(demo.base + "/")
    page.evaluate(PAGE, f"/sse/streams/{sid}")
    page.wait_for_function("window.connected", timeout=10_000)
    with sse.producer(sid) as out:  # live, while Chromium listens
        for value in TRICKY:  # coalesced (the default): several per write
            out.send("token", value)
        out.complete({"done": True})
    page.wait_for_function("window.finished", timeout=20_000)
    received = page.evaluate("window.received")
    ids = [event.id for event in sse.event_log().read(sid, None)]
    assert [event["id"] for event in received] == ids
    assert [event["type"] for event in received] == ["token"] * len(TRICKY) + [
        "completed"
    ]
    for value, event in zip(TRICKY, received, strict=False):
        assert json.loads(event["data"]) == value
    app.extensions["sse_resilience"].close()
