"""Stream ids and event ids: how they are made and what a valid one looks
like; and the name of a worker process."""

from __future__ import annotations

import os
import re
import secrets
import socket

_STREAM_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_EVENT_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")


def worker_name() -> str:
    """This process as operators see it, ``<host>:<pid>`` (the dashboard's
    workers, the guardian's sweeps)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def new_stream_id() -> str:
    """Return a fresh, unguessable stream id (128 random bits, URL-safe)
    that never starts with ``-``, which a shell command such as ``flask sse
    cancel <id>`` would take for an option."""
    while True:
        stream_id = secrets.token_urlsafe(16)
        if not stream_id.startswith("-"):
            return stream_id


def is_valid_stream_id(value: object, rule: re.Pattern[str] | None = None) -> bool:
    """True if ``value`` is 1-128 characters of ``[A-Za-z0-9_-]`` and, when a
    ``rule`` is given (``SSE_RESILIENCE_STREAM_ID_PATTERN``), matches it whole.

    The fixed charset always applies, so no rule can let a character into a
    Redis key that could break its hash tag or the URL.
    """
    if not isinstance(value, str) or _STREAM_ID.fullmatch(value) is None:
        return False
    return rule is None or rule.fullmatch(value) is not None


def parse_event_id(value: str) -> tuple[int, int] | None:
    """Return a log id (``"<ms>-<n>"``) as a sortable pair, or None if malformed.

    The limits keep the id within what Redis Streams accepts (64-bit parts).
    """
    match = _EVENT_ID.fullmatch(value)
    if match is None:
        return None
    ms, n = int(match.group(1)), int(match.group(2))
    if ms >= 2**64 or n >= 2**64:
        return None
    return ms, n
