"""Configuration keys, their defaults, and validation.

Every key lives in ``app.config`` under the ``SSE_RESILIENCE_`` prefix. A keyword
argument given to :class:`~flask_sse_resilience.SSEResilience` beats the app
config, which beats the default. Values are validated once, at ``init_app``, so a
bad value is reported at startup with the key's name rather than on the first
request.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigurationError, ConfigurationWarning

#: URL schemes :func:`~flask_sse_resilience.redisio.connect.make_client` understands.
SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
)

PREFIX = "SSE_RESILIENCE_"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclasses.dataclass(frozen=True)
class Settings:
    """The validated configuration of one app.

    Field names are the config keys without the ``SSE_RESILIENCE_`` prefix, in
    lower case. All durations are in seconds.
    """

    #: Redis URL used when no client is passed as ``redis=``: ``redis://``,
    #: ``rediss://``, ``unix://``, ``redis+cluster://`` or ``redis+sentinel://``.
    redis_url: str = "redis://localhost:6379/0"
    #: Prefix of every Redis key and channel the extension writes.
    key_prefix: str = "sse:"
    #: Shards of the active-stream index (and cluster slots streams spread
    #: over); the same on every host, and not changed while streams live.
    shards: int = 64
    #: URL prefix of the blueprint.
    url_prefix: str = "/sse"
    #: Seconds between producer heartbeats and between keep-alive comments.
    heartbeat_interval: float = 15.0
    #: Seconds without a heartbeat after which an active stream is stale.
    stale_threshold: float = 30.0
    #: Seconds an open stream (record and log) lives at most.
    stream_ttl: int = 3600
    #: Seconds a finished stream's terminal event, record and log are kept.
    completion_ttl: int = 300
    #: Longest time between the guardian's ticks, in seconds (see
    #: :attr:`guardian_tick` for how often it really ticks).
    guardian_interval: float = 30.0
    #: Whether this app schedules the guardian.
    guardian_enabled: bool = True
    #: Approximate cap on events kept in one stream's log (``XADD MAXLEN ~``).
    max_events: int = 10_000
    #: Largest serialized event data a producer may send, in bytes.
    max_event_bytes: int = 65_536
    #: Size of the bounded, blocking Redis connection pool per process.
    redis_max_connections: int = 4
    #: Recent live events each process keeps per followed stream, shared by
    #: its connections; a client further behind reads the log instead.
    live_buffer: int = 10_000
    #: Whether to feed Prometheus metrics (needs the ``metrics`` extra).
    metrics: bool = False
    #: Extra rule app-given stream ids must match (on top of 1-128 characters
    #: of ``[A-Za-z0-9_-]``, which always applies).
    stream_id_pattern: str = r"[A-Za-z0-9_-]{1,128}"
    #: Open stream connections one user may hold across all workers.
    max_connections_per_user: int = 20
    #: Active streams one user may own at once.
    max_streams_per_user: int = 100
    #: Origins allowed to read streams cross-origin; empty means CORS off.
    cors_origins: tuple[str, ...] = ()
    #: Seconds a stream token from ``stream_token()`` stays valid.
    token_max_age: int = 300
    #: Seconds before a stream token expires that its live response sends a
    #: ``token-expiring`` event, so the client swaps in a fresh token first.
    token_refresh_lead: float = 30.0
    #: Streams one multiplexed response (``GET <prefix>/multi``) may carry.
    max_multi_streams: int = 16
    #: Whether to serve the operations dashboard (needs ``dashboard_auth``).
    dashboard: bool = False
    #: Seconds a producer keeps retrying a write while Redis is unavailable
    #: (a failover, a restart), unless ``producer(retry_for=...)`` says
    #: otherwise; 0 raises after the client's own quick retries.
    producer_retry_for: float = 30.0
    #: Seconds after which a healthy live stream response ends with a
    #: ``retry:`` hint, the client resuming from its cursor (±20 % jitter per
    #: connection); rebalances load after a deploy and stays under proxies'
    #: absolute limits. 0 never rotates.
    max_connection_age: float = 600.0
    #: Seconds a producer has to act on a cancel request before the stream
    #: ends ``cancelled`` without it (fenced: its later writes are refused);
    #: None: the stale threshold.
    cancel_grace: float | None = None
    #: Seconds without any follower after which a stream is cancelled (``by:
    #: "abandoned"``), unless ``open_stream(cancel_when_abandoned=...)`` says
    #: otherwise; 0 never.
    cancel_when_abandoned: float = 0.0
    #: Milliseconds a producer holds sends to write them together (one
    #: script call and one announcement per window; each send still its own
    #: event), unless ``producer(coalesce_ms=...)`` says otherwise; 0 writes
    #: each at once.
    coalesce_ms: int = 40
    #: Leading edge: a send that finds its stream quiet (nothing held or being
    #: written, the last write a window ago or more) is written at once; only
    #: the sends close behind a write are held. False: every first send of a
    #: window waits for the window to end.
    coalesce_leading: bool = True

    @property
    def fence_after(self) -> float:
        """Seconds from a cancel request to the fence: :attr:`cancel_grace`,
        by default the stale threshold."""
        return self.stale_threshold if self.cancel_grace is None else self.cancel_grace

    @property
    def guardian_tick(self) -> float:
        """Seconds between the guardian's ticks: ``guardian_interval``, or
        less where needed to tell a Redis outage from a dead producer (at
        least five ticks per ``stale_threshold - heartbeat_interval``; see
        :mod:`~flask_sse_resilience.store.guardian`)."""
        room = self.stale_threshold - self.heartbeat_interval
        return max(0.05, min(self.guardian_interval, room / 5))

    @property
    def guardian_gap(self) -> float:
        """Seconds without a successful sweep of a shard after which the
        guardian assumes Redis was in trouble there and gives its streams
        one stale threshold of grace (two and a half ticks)."""
        return self.guardian_tick * 2.5


def _number(key: str, value: Any, *, integer: bool) -> float:
    if isinstance(value, bool):
        raise ConfigurationError(f"{key} must be a number, got {value!r}")
    if isinstance(value, str):
        try:
            value = int(value) if integer else float(value)
        except ValueError:
            kind = "an integer" if integer else "a number"
            raise ConfigurationError(f"{key} must be {kind}, got {value!r}") from None
    if integer and not isinstance(value, int):
        raise ConfigurationError(f"{key} must be an integer, got {value!r}")
    if not isinstance(value, (int, float)):
        raise ConfigurationError(f"{key} must be a number, got {value!r}")
    if value <= 0:
        raise ConfigurationError(f"{key} must be greater than 0, got {value!r}")
    return value


def _positive_int(key: str, value: Any) -> int:
    return int(_number(key, value, integer=True))


def _positive_float(key: str, value: Any) -> float:
    return float(_number(key, value, integer=False))


def _non_negative_float(key: str, value: Any) -> float:
    if not isinstance(value, bool) and value in (0, "0", "0.0"):
        return 0.0
    return _positive_float(key, value)


def _non_negative_int(key: str, value: Any) -> int:
    if not isinstance(value, bool) and value in (0, "0"):
        return 0
    return _positive_int(key, value)


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConfigurationError(f"{key} must be a boolean, got {value!r}")


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{key} must be a non-empty string, got {value!r}")
    return value


def _pattern(key: str, value: Any) -> str:
    text = _text(key, value)
    try:
        re.compile(text)
    except re.error as exc:
        raise ConfigurationError(f"{key} is not a regular expression: {exc}") from None
    return text


def _origins(key: str, value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple, set, frozenset)):
        raise ConfigurationError(f"{key} must be a list of origins, got {value!r}")
    origins = tuple(
        str(item).strip().rstrip("/") for item in items if str(item).strip()
    )
    for origin in origins:
        if origin == "*" or not re.fullmatch(r"https?://[^/\s]+", origin):
            raise ConfigurationError(
                f"{key} takes exact origins like 'https://app.example.com', "
                f"not {origin!r} (a wildcard would expose every user's streams)"
            )
    return origins


def _redis_url(key: str, value: Any) -> str:
    text = _text(key, value)
    scheme = text.partition("://")[0]
    if scheme not in SCHEMES or "://" not in text:
        raise ConfigurationError(
            f"{key} must be a Redis URL ({', '.join(s + '://' for s in SCHEMES)}), "
            f"got {value!r}"
        )
    return text


def _url_prefix(key: str, value: Any) -> str:
    text = _text(key, value)
    if not text.startswith("/"):
        raise ConfigurationError(f"{key} must start with '/', got {value!r}")
    return text.rstrip("/") or "/"


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "redis_url": _redis_url,
    "key_prefix": _text,
    "shards": _positive_int,
    "url_prefix": _url_prefix,
    "heartbeat_interval": _positive_float,
    "stale_threshold": _positive_float,
    "stream_ttl": _positive_int,
    "completion_ttl": _positive_int,
    "guardian_interval": _positive_float,
    "guardian_enabled": _boolean,
    "max_events": _positive_int,
    "max_event_bytes": _positive_int,
    "redis_max_connections": _positive_int,
    "live_buffer": _positive_int,
    "metrics": _boolean,
    "stream_id_pattern": _pattern,
    "max_connections_per_user": _positive_int,
    "max_streams_per_user": _positive_int,
    "cors_origins": _origins,
    "token_max_age": _positive_int,
    "token_refresh_lead": _positive_float,
    "max_multi_streams": _positive_int,
    "dashboard": _boolean,
    "producer_retry_for": _non_negative_float,
    "max_connection_age": _non_negative_float,
    "cancel_grace": _positive_float,
    "cancel_when_abandoned": _non_negative_float,
    "coalesce_ms": _non_negative_int,
    "coalesce_leading": _boolean,
}

#: Every config key the extension reads, mapped to its default (see
#: :mod:`~flask_sse_resilience.settings` for the keys it does not).
DEFAULTS: dict[str, Any] = {
    PREFIX + field.name.upper(): field.default for field in dataclasses.fields(Settings)
}


def config_key(name: str) -> str:
    """Return the ``app.config`` key for a settings field name."""
    return PREFIX + name.upper()


def check_option_names(options: Mapping[str, Any]) -> None:
    """Raise :class:`TypeError` for a constructor option that is not a setting."""
    unknown = sorted(set(options) - set(_PARSERS))
    if unknown:
        raise TypeError(
            f"unknown SSEResilience option(s): {', '.join(unknown)}; "
            f"valid options are {', '.join(sorted(_PARSERS))}"
        )


def load_settings(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> Settings:
    """Build validated :class:`Settings` from app config and constructor options.

    A constructor option beats the config key, which beats the default. Raises
    :class:`~flask_sse_resilience.errors.ConfigurationError` naming the key of
    the first bad value, including the cross-field rule that the stale
    threshold must be longer than the heartbeat interval.
    """
    values: dict[str, Any] = {}
    for name, parse in _PARSERS.items():
        key = config_key(name)
        if name in overrides:
            values[name] = parse(f"{key} (option {name!r})", overrides[name])
        elif key in config:
            values[name] = parse(key, config[key])
    settings = Settings(**values)
    if settings.stale_threshold <= settings.heartbeat_interval:
        raise ConfigurationError(
            f"{config_key('stale_threshold')} ({settings.stale_threshold:g} s) must "
            f"be greater than {config_key('heartbeat_interval')} "
            f"({settings.heartbeat_interval:g} s), or every stream looks stale"
        )
    return settings


def check_compression(config: Mapping[str, Any]) -> None:
    """Refuse a compression layer set to compress event streams.

    Flask-Compress (``COMPRESS_MIMETYPES``) compresses what it is told to,
    streams included (``COMPRESS_STREAMS``, on by default), and a compressor
    holds bytes back until its buffer fills: tokens would arrive in bursts,
    keep-alives never. Event streams are not in its default list.

    :raises ConfigurationError: if ``text/event-stream`` is in
        ``COMPRESS_MIMETYPES`` while ``COMPRESS_STREAMS`` is on.
    """
    mimetypes = config.get("COMPRESS_MIMETYPES") or ()
    if "text/event-stream" in mimetypes and config.get("COMPRESS_STREAMS", True):
        raise ConfigurationError(
            "COMPRESS_MIMETYPES includes text/event-stream: Flask-Compress would "
            "buffer the event streams (tokens in bursts, no keep-alives); remove "
            "text/event-stream from COMPRESS_MIMETYPES (stream responses also "
            "send Cache-Control: no-transform for proxies)"
        )


# -- Keys that have no effect, said out loud.

log = logging.getLogger(__name__)


def prefixed(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``SSE_RESILIENCE_*`` entries of ``config``."""
    return {
        k: v for k, v in config.items() if isinstance(k, str) and k.startswith(PREFIX)
    }


def nearest_key(key: str) -> str | None:
    """The known config key most like ``key`` (a misspelling of it), or None."""
    names = [known.removeprefix(PREFIX) for known in DEFAULTS]
    found = difflib.get_close_matches(key.removeprefix(PREFIX), names, 1, 0.5)
    return PREFIX + found[0] if found else None


def warn_unknown_keys(config: Mapping[str, Any]) -> None:
    """Warn (:class:`ConfigurationWarning`) about each ``SSE_RESILIENCE_*``
    key of ``config`` that is no setting, naming the nearest one: a
    misspelt key would otherwise be ignored without a word."""
    for key in sorted(set(prefixed(config)) - set(DEFAULTS)):
        near = nearest_key(key)
        hint = f"did you mean {near}?" if near else "no setting has a name like it"
        config_warning(f"unknown config key {key} is ignored; {hint}")


def changed_keys(before: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    """The ``SSE_RESILIENCE_*`` keys set, changed or removed in ``config``
    since ``before`` (its :func:`prefixed` entries at ``init_app``)."""
    now = prefixed(config)
    return sorted(
        key
        for key in set(before) | set(now)
        if before.get(key, _NONE) != now.get(key, _NONE)
    )


_NONE = object()
_PACKAGE = str(Path(__file__).parent) + os.sep


def config_warning(message: str) -> None:
    """Issue a :class:`ConfigurationWarning` attributed to the first caller
    outside this package: the app's ``SSEResilience(app)`` or ``init_app``
    line, whichever ran."""
    frame = sys._getframe(1)
    level = 2
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    warnings.warn(message, ConfigurationWarning, stacklevel=level)


def warn_late_keys(before: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Log a warning for each key :func:`changed_keys` finds: settings are
    read once, so it has no effect."""
    for key in changed_keys(before, config):
        log.warning(
            "%s was set after init_app (to %r), so it has no effect: set it "
            "before SSEResilience(app) / init_app reads the config",
            key, config.get(key, "<removed>"),
        )  # fmt: skip
