"""Which Redis an app uses, said safely, and why it fails, said usefully.

A :class:`Target` is the Redis URL with its password masked
(``redis://:***@host:6379/0``) and the setting that chose it
(``SSE_RESILIENCE_REDIS_URL``, the default because none was set, or a client
passed as ``redis=``). :func:`explain` turns a Redis error into one line that
names the target, the cause and the fix; the outage log
(:mod:`~flask_sse_resilience.redisio.outages`), the CLI and ``flask sse check`` all
speak through it, so a wrong database, a refused password or a server that
is down read the same everywhere. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from redis import exceptions as rx

from .failures import UNAVAILABLE, WrongDatabase, is_out_of_memory

#: The config key of the Redis URL (also in :mod:`~flask_sse_resilience.settings`).
URL_KEY = "SSE_RESILIENCE_REDIS_URL"

_QUERY_SECRET = re.compile(r"(?i)([?&]password=)[^&]*")


def mask_url(url: str) -> str:
    """``url`` with its password (in the user info or a ``password=`` query
    parameter) replaced by ``***``; a user name stays, as it is no secret."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    # The user info ends at the last "@" before the query: a password may
    # hold "@" or "/" unencoded, a host, path or database number never does.
    query = rest.find("?")
    at = (rest if query < 0 else rest[:query]).rfind("@")
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        rest = f"{user}:***@{rest[at + 1 :]}" if colon else rest
    return scheme + "://" + _QUERY_SECRET.sub(r"\1***", rest)


def describe_client(client: Any) -> str:
    """A URL-like, password-masked description of a ready client (one
    passed as ``redis=``), read from its connection settings."""
    pool: Any = getattr(client, "connection_pool", None)
    manager = getattr(pool, "sentinel_manager", None)
    if manager is not None:
        hosts = ",".join(
            _host(getattr(s, "connection_pool", None)) for s in manager.sentinels
        )
        db = (pool.connection_kwargs or {}).get("db", 0)
        return f"redis+sentinel://{hosts}/{pool.service_name}/{db}"
    nodes = getattr(getattr(client, "nodes_manager", None), "startup_nodes", None)
    if nodes:
        return "redis+cluster://" + ",".join(sorted(nodes))
    kwargs: Mapping[str, Any] = getattr(pool, "connection_kwargs", None) or {}
    secret = ":***@" if kwargs.get("password") else ""
    if kwargs.get("path"):
        return f"unix://{secret}{kwargs['path']}?db={kwargs.get('db', 0)}"
    return f"redis://{secret}{_host(pool)}/{kwargs.get('db', 0)}"


def _host(pool: Any) -> str:
    kwargs = getattr(pool, "connection_kwargs", None) or {}
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


@dataclasses.dataclass(frozen=True)
class Target:
    """Where an app's Redis is, and which setting chose it."""

    #: The URL (or a ready client's address), password masked.
    where: str
    #: ``"config"`` (``SSE_RESILIENCE_REDIS_URL``), ``"option"`` (the
    #: ``redis_url=`` argument), ``"default"`` (nothing was set) or
    #: ``"client"`` (a client passed as ``redis=``).
    chosen_by: str

    @classmethod
    def of(
        cls,
        url: str,
        config: Mapping[str, Any],
        options: Mapping[str, Any],
        client: Any = None,
    ) -> Target:
        """The target of an app whose settings say ``url``; ``client`` is a
        ready client passed as ``redis=`` (it wins over any URL)."""
        if client is not None:
            return cls(describe_client(client), "client")
        if "redis_url" in options:
            return cls(mask_url(url), "option")
        return cls(mask_url(url), "config" if URL_KEY in config else "default")

    @property
    def setting(self) -> str:
        """The setting to look at, as a user would name it."""
        return {
            "config": URL_KEY,
            "option": "SSEResilience(redis_url=...)",
            "client": "the client passed as redis=",
        }.get(self.chosen_by, URL_KEY)

    def __str__(self) -> str:
        origin = {
            "config": URL_KEY,
            "option": "redis_url=",
            "client": "redis=",
            "default": f"the default; set {URL_KEY}",
        }[self.chosen_by]
        return f"{self.where} ({origin})"


def cause(exc: BaseException) -> str:
    """``ExceptionType: message``, what a log line shows of an error."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def explain(exc: BaseException, target: Target) -> str:
    """One line naming ``target``, what ``exc`` says went wrong there, and
    what to do about it."""
    problem, fix = _diagnose(exc, target)
    return f"Redis at {target} {problem}; {fix}"


def is_wrong_database(exc: BaseException) -> bool:
    """True for a database number the server does not have, whether this
    package's client said so (:class:`WrongDatabase`) or a ready one did."""
    return isinstance(exc, WrongDatabase) or (
        isinstance(exc, rx.ResponseError) and "DB index is out of range" in str(exc)
    )


def _diagnose(exc: BaseException, target: Target) -> tuple[str, str]:
    setting = target.setting
    if is_wrong_database(exc):
        databases = getattr(exc, "databases", None)
        db = getattr(exc, "db", None)
        which = f"database {db}" if db is not None else "the database asked for"
        if databases:
            last = databases - 1
            has = f"it has {databases} (its databases setting), numbered 0-{last}"
        else:
            has = "use one below its databases setting (16 by default)"
        return f"has no {which}", f"{has}: fix the database number in {setting}"
    if isinstance(exc, rx.AuthenticationError) or "NOAUTH" in str(exc):
        return (
            f"refused the credentials ({cause(exc)})",
            f"check the user name and password in {setting}",
        )
    if isinstance(exc, rx.ReadOnlyError):
        return (
            f"is a read-only replica ({cause(exc)})",
            f"point {setting} at the master (or at the sentinels, "
            "redis+sentinel://, to follow failovers)",
        )
    if isinstance(exc, rx.BusyLoadingError):
        return f"is loading its data ({cause(exc)})", "it serves again once loaded"
    if isinstance(exc, (rx.ConnectionError, rx.TimeoutError)):
        if target.chosen_by == "default":
            fix = f"start Redis there, or set {URL_KEY} to your Redis's URL"
        else:
            fix = f"check that Redis runs there and that {setting} is right"
        return f"is unreachable ({cause(exc)})", fix
    if is_out_of_memory(exc):
        return (
            f"is out of memory and refuses writes ({cause(exc)})",
            "free memory or raise its maxmemory",
        )
    if isinstance(exc, UNAVAILABLE):
        return (
            f"cannot serve now ({cause(exc)})",
            "it is failing over or busy; it serves again once that is over",
        )
    return f"answered an error ({cause(exc)})", "see the Redis server's log"
