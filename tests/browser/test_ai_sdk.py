"""The AI SDK's real ``useChat`` (``ai`` and ``@ai-sdk/react``, current major)
with our transport in Chromium, against the demo under gunicorn: send, reload
mid-answer and resume by the chat's key, stop (a cancel on the server)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis

from flask_sse_resilience.keys import Keys
from harness.demo_server import Demo

from .conftest import login, open_lab

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

KEYS = Keys("sse:")
WORDS = ["hello", "resilient", "world"]


def expected_text(tokens: int) -> str:
    return "".join(f"{WORDS[i % 3]}{i} " for i in range(tokens))


def answer(page: Any) -> str:
    return str(page.eval_on_selector("#answer", "el => el.textContent"))


def send(page: Any, tokens: int) -> None:
    """Send a message without waiting for its answer (sendMessage's promise
    settles when the answer ends)."""
    page.evaluate(
        """(tokens) => { void window.chat.send("hello resilient world",
                                               {tokens, interval_ms: 50}); }""",
        tokens,
    )


def key_status(page: Any, chat: str) -> Any:
    return page.evaluate(
        """async (chat) => {
             const r = await fetch("/sse/keys/" + chat);
             return r.status === 204 ? null : (await r.json()).status;
           }""",
        chat,
    )


def test_send_reload_mid_answer_and_resume_then_stop(
    demo: Demo, page: Any, lab_bundles: Path, r: redis.Redis
) -> None:
    login(page, demo.base)
    open_lab(page, demo.base, "chat-app", lab_bundles, "?chat=chat-ai")
    page.wait_for_function("window.chat !== undefined")
    # Send: the answer streams in as text parts.
    send(page, 80)
    page.wait_for_function("document.getElementById('answer').textContent.length > 40")
    assert page.eval_on_selector("#status", "el => el.textContent") == "streaming"
    assert expected_text(80).startswith(answer(page))
    # Reload mid-answer: useChat's resume finds the running stream by key.
    page.reload()
    reloaded = time.monotonic()
    page.wait_for_function("document.getElementById('answer').textContent.length > 0")
    resumed = time.monotonic() - reloaded
    page.wait_for_function(
        "document.getElementById('status').textContent === 'ready'", timeout=20_000
    )
    assert answer(page) == expected_text(80)  # the whole answer, once
    assert key_status(page, "chat-ai") == "completed"
    # Stop: a long answer is cancelled on the server, not just disconnected.
    shown = int(page.eval_on_selector("#messages", "el => el.textContent"))
    send(page, 1000)
    page.wait_for_function(
        f"document.getElementById('messages').textContent == {shown + 2}"
        " && document.getElementById('answer').textContent.length > 40"
    )
    page.evaluate("window.chat.stop()")
    stopped = time.monotonic()
    deadline = stopped + 10
    while key_status(page, "chat-ai") != "cancelled" and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    cancelled = time.monotonic() - stopped
    assert key_status(page, "chat-ai") == "cancelled"
    shown = answer(page)
    page.wait_for_timeout(500)
    assert answer(page) == shown  # nothing more arrives
    assert expected_text(1000).startswith(shown)
    print(
        f"AI SDK: resumed text {resumed:.2f} s after the reload; "
        f"cancelled on the server {cancelled:.2f} s after stop()"
    )
