"""A client that follows a stream to its end over real HTTP, as a browser's
EventSource would: it reconnects with ``Last-Event-ID`` whenever a response
ends early. Read with ``httpx-sse``, a client this project did not write."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import httpx
from httpx_sse import connect_sse


class Follower:
    """A client that follows a stream to its end, reconnecting with
    Last-Event-ID whenever a response ends early, as a browser would."""

    def __init__(self, bases: list[str], url: str, cookies: httpx.Cookies) -> None:
        self.bases, self.url, self.cookies = bases, url, cookies
        self.events: list[dict[str, Any]] = []
        self.gone = False  # answered 404: the stream no longer exists
        self.resets = 0
        self.retries: list[int] = []
        self.connections = 0
        self.ended_at: list[float] = []
        self.last_id: str | None = None
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                base = self.bases[min(self.connections, len(self.bases) - 1)]
                if self._once(base):
                    return
                time.sleep(0.2)
        except BaseException as exc:  # reported by join()
            self.error = exc
        finally:
            self.done.set()

    def _once(self, base: str) -> bool:
        headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
        try:
            with httpx.Client(base_url=base, cookies=self.cookies, timeout=30) as c:
                with connect_sse(c, "GET", self.url, headers=headers) as source:
                    if source.response.status_code == 404:
                        self.gone = True
                        return True
                    if source.response.status_code != 200:
                        return False
                    self.connections += 1
                    for sse in source.iter_sse():
                        if sse.retry is not None:
                            self.retries.append(sse.retry)
                        if not sse.data or sse.event == "heartbeat":
                            continue
                        event = json.loads(sse.data)
                        if event["type"] == "connected":
                            continue
                        if sse.id:
                            self.last_id = sse.id
                        if event["type"] == "reset":
                            self.events.clear()  # told to start over
                            self.resets += 1
                            continue
                        self.events.append(event)
                        if event["type"] in ("completed", "failed"):
                            return True
        except httpx.TransportError:
            pass
        self.ended_at.append(time.monotonic())
        return False

    def join(self, seconds: float = 60) -> list[dict[str, Any]]:
        assert self.done.wait(seconds), "follower did not finish"
        if self.error is not None:
            raise self.error
        return self.events

    def tokens(self) -> list[int]:
        """The demo's token numbers received; a snapshot (a late joiner's
        start) stands for the tokens its text holds ("token0 token1 ...")."""
        found: list[int] = []
        for event in self.events:
            if event["type"] == "snapshot":
                words = event["data"].split()
                found = [int(re.search(r"\d+$", word).group()) for word in words]
            elif event["type"] == "token":
                found.append(event["data"]["index"])
        return found
