"""Round trips shared by concurrent requests.

A worker holds a handful of Redis connections however many clients it serves
(``SSE_RESILIENCE_REDIS_MAX_CONNECTIONS``). When a thousand clients connect at
once, each needing a pipeline of its own, they would queue for those few
connections one round trip at a time. A :class:`SharedPipeline` instead sends the
pipelines of every caller waiting at that moment as one pipeline: one round
trip per turn, however many callers, so the connect rate grows with the load
instead of being capped by the pool.

One caller at a time leads: it sends what is pending, hands each caller its
replies, and passes the lead to the first caller that arrived meanwhile.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from redis.exceptions import NoScriptError

from .commands import RedisClient, load_scripts
from .loops import Build


class _Call:
    __slots__ = ("build", "done", "error", "lead", "replies")

    def __init__(self, build: Build) -> None:
        self.build = build
        self.done = threading.Event()
        self.lead = False
        self.replies: list[Any] = []
        self.error: BaseException | None = None


class SharedPipeline:
    """Runs the pipelines of concurrent callers together (see the module)."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self.pid = os.getpid()
        self._pending: list[_Call] = []
        self._busy = False
        self._lock = threading.Lock()
        #: Round trips made and pipelines sent; for tests and benchmarks.
        self.turns = 0
        self.calls = 0

    def run(self, build: Build) -> list[Any]:
        """Queue commands with ``build(pipe)`` and return their replies once
        they ran, raising the first error among them.

        The same rule as :func:`~flask_sse_resilience.redisio.commands.run_pipeline`
        applies: at most one script call that is not safe to repeat.
        """
        call = _Call(build)
        with self._lock:
            self._pending.append(call)
            call.lead = not self._busy
            self._busy = True
        if not call.lead:
            call.done.wait()
        if call.lead:  # first in, or handed the lead by the previous turn
            self._turn()
        if call.error is not None:
            raise call.error
        return call.replies

    def _turn(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        try:
            self._send(pending)
        finally:
            with self._lock:
                successor = self._pending[0] if self._pending else None
                self._busy = successor is not None
            if successor is not None:
                successor.lead = True
                successor.done.set()
            for call in pending:
                call.lead = False
                call.done.set()

    def _send(self, pending: list[_Call]) -> None:
        self.turns += 1
        self.calls += len(pending)
        try:
            retry = self._execute(pending)
            if retry:
                load_scripts(self.client)
                retry = self._execute(retry)
            for call in retry:  # still no script: report it
                call.error = NoScriptError("script not loaded")
        except Exception as exc:  # noqa: BLE001 - every caller gets the error
            for call in pending:
                if call.error is None and not call.replies:
                    call.error = exc

    def _execute(self, pending: list[_Call]) -> list[_Call]:
        """Run ``pending`` in one pipeline; return the calls that met NOSCRIPT."""
        pipe = self.client.pipeline(transaction=False)
        spans = []
        for call in pending:
            start = len(pipe)
            call.build(pipe)
            spans.append((start, len(pipe)))
        replies = pipe.execute(raise_on_error=False)
        retry = []
        for call, (start, end) in zip(pending, spans, strict=True):
            own = replies[start:end]
            if any(isinstance(reply, NoScriptError) for reply in own):
                retry.append(call)
                continue
            error = next((r for r in own if isinstance(r, Exception)), None)
            if error is not None:
                call.error = error
            else:
                call.replies = list(own)
        return retry
