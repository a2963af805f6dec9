"""The operations dashboard: one read-only page of what the registry knows.

Opt-in (``SSE_RESILIENCE_DASHBOARD``) and never open: the app supplies an
admin check (``@sse.dashboard_auth``); without one every dashboard URL is a 404
and an error is logged, and a user the check refuses gets 403. While it is
off its URLs answer the same 404 as before (a user the admin check accepts
is also told how to turn it on), and the first such request in a process
logs how. Served under the blueprint:

- ``<prefix>/_dashboard``: the page (HTML, CSS and a small script from the
  package's static folder; no build step, no CDN);
- ``<prefix>/_dashboard/snapshot``: the numbers as JSON;
- ``<prefix>/_dashboard/stream``: the same as Server-Sent Events, one snapshot
  every two seconds, which is how the page refreshes itself.

A snapshot reads only what the registry, the guardian and the per-process
counters (:mod:`flask_sse_resilience.store.stats`) keep, in two round trips: one
pipeline for the index shards, the counters, the workers and the last sweep,
and one for the records shown (or, to sort by a record field, for every active
record); plus Redis's memory (``INFO memory``, one per master; see
:mod:`flask_sse_resilience.redisio.memory`), shown as unknown where ``INFO`` is
refused.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, request
from redis import exceptions as rx

from .. import wire
from ..errors import DashboardForbidden, DashboardNotFound, InvalidDashboardQuery
from ..models import StreamMetadata, StreamState, from_millis, to_iso
from ..redisio import memory
from ..redisio.commands import parse_now, queue_now, run_parts
from ..redisio.failures import UNAVAILABLE
from ..settings import changed_keys
from ..state import State, get_state
from ..store.guardian import SweepRecord, queue_last_sweep
from ..store.stats import HISTORY, parse_history, queue_history

log = logging.getLogger(__name__)

#: Columns the active-streams table sorts by, server-side.
SORTS = ("heartbeat", "age", "owner", "type", "connections", "events")

#: Rows per page of the active-streams table.
PER_PAGE = 50

#: The package's static folder, served by the blueprint under
#: ``<prefix>/static/``: the browser client built from clients/js, and this
#: dashboard's page, styles and script.
STATIC = Path(__file__).resolve().parents[1] / "static"

#: The page; its script and style come from the blueprint's static folder.
_PAGE = STATIC / "dashboard.html"

#: Seconds between snapshots on the dashboard's own stream.
REFRESH = 2.0


def snapshot(
    state: State, *, sort: str = "heartbeat", desc: bool = False, page: int = 1
) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready values.

    ``sort`` is one of :data:`SORTS` (``heartbeat``: longest silent first,
    unless ``desc``); ``page`` counts from 1.

    :raises ValueError: for an unknown ``sort`` or a page below 1.
    """
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    if page < 1:
        raise ValueError("page must be 1 or more")
    settings = state.settings
    # Minutes by this host's clock, like the counters' writers (stats.py).
    minute = int(time.time() // 60)
    span = range(minute - HISTORY + 1, minute + 1)

    parts = run_parts(
        state.redis,
        {
            "now": queue_now,
            "sweep": lambda pipe: queue_last_sweep(pipe, state.keys),
            "history": lambda pipe: queue_history(pipe, state.keys, span),
            "index": state.registry.queue_index_entries,
        },
    )
    now_ms = parse_now(parts["now"][0])
    sweep = SweepRecord.parse(parts["sweep"][0])
    workers, minutes = parse_history(span, parts["history"])
    index = state.registry.parse_index_entries(parts["index"])

    if sort == "heartbeat":
        index.sort(key=lambda entry: entry[1], reverse=desc)
        start = (page - 1) * PER_PAGE
        records = _active(
            state.registry.get_many(i for i, _ in index[start : start + PER_PAGE])
        )
    else:
        records = _active(state.registry.get_many(i for i, _ in index))
        records.sort(key=_sort_key(sort), reverse=desc)
        start = (page - 1) * PER_PAGE
        records = records[start : start + PER_PAGE]
    stale_ms = settings.stale_threshold * 1000
    return {
        "at": to_iso(from_millis(now_ms)),
        "staleThresholdMs": int(stale_ms),
        "counts": {
            "active": len(index),
            **{
                name: sum(m.get(name, 0) for m in minutes)
                for name in ("completed", "failed", "orphaned", "cancelled", "oom")
            },
        },
        "workers": _workers(workers, now_ms, settings.heartbeat_interval),
        "streams": {
            "total": len(index),
            "page": page,
            "perPage": PER_PAGE,
            "sort": sort,
            "desc": desc,
            "rows": [_row(r, now_ms, stale_ms) for r in records],
        },
        "sweep": _sweep(sweep, now_ms),
        "history": minutes,
        "redis": _redis(state),
    }


def _redis(state: State) -> dict[str, Any]:
    """Redis's memory, per master and in all (``used``/``max`` None when
    unknown or unlimited). The writes it refused for memory are in
    ``counts`` (``oom``) and ``history``."""
    try:
        nodes = memory.read(state.redis)
    except rx.RedisError:  # INFO refused (or Redis gone since the pipeline)
        nodes = []
    limits = [n.maxmemory for n in nodes]
    return {
        "nodes": [n.as_json() for n in nodes],
        "used": sum(n.used for n in nodes) if nodes else None,
        # Unlimited if any master is: a sum would mislead.
        "max": sum(limits) if nodes and all(limits) else None,
        "policies": sorted({n.policy for n in nodes}),
        "full": any(n.full for n in nodes),
    }


def _active(records: list[StreamMetadata]) -> list[StreamMetadata]:
    """Drop records that ended since the index was read."""
    return [r for r in records if r.state is StreamState.ACTIVE]


def _sort_key(sort: str) -> Callable[[StreamMetadata], Any]:
    return {
        "age": lambda r: -r.started_at.timestamp(),
        "owner": lambda r: r.user_id,
        "type": lambda r: r.stream_type,
        "connections": lambda r: r.connections,
        "events": lambda r: r.seq,
    }[sort]


def _workers(
    reports: dict[str, dict[str, int]], now_ms: int, interval: float
) -> list[dict[str, Any]]:
    """Processes that reported within three intervals, by name."""
    return [
        {"worker": name, "clients": report["clients"]}
        for name, report in sorted(reports.items())
        if now_ms - report["at"] <= interval * 3000 + 2000
    ]


def _row(record: StreamMetadata, now_ms: int, stale_ms: float) -> dict[str, Any]:
    beat = record.last_heartbeat.timestamp() * 1000
    started = record.started_at.timestamp() * 1000
    silent = max(0.0, (now_ms - beat) / 1000)
    return {
        "id": record.stream_id,
        "owner": record.user_id,
        "type": record.stream_type,
        "ageS": round(max(0.0, (now_ms - started) / 1000), 1),
        "silentS": round(silent, 1),
        # Near stale from half the threshold on: the producer missed a beat.
        "health": "stale"
        if silent * 1000 > stale_ms
        else "warning"
        if silent * 1000 > stale_ms / 2
        else "ok",
        "connections": record.connections,
        "events": record.seq,
    }


def _sweep(sweep: SweepRecord | None, now_ms: int) -> dict[str, Any] | None:
    if sweep is None:
        return None
    return {
        "at": to_iso(from_millis(sweep.at_ms)),
        "agoS": round((now_ms - sweep.at_ms) / 1000, 1),
        "worker": sweep.worker,
        "orphaned": sweep.orphaned,
        "pruned": sweep.pruned,
        "ms": sweep.ms,
        "sweep": sweep.sweep,
    }


def _params() -> dict[str, Any]:
    sort = request.args.get("sort", "heartbeat")
    order = request.args.get("order", "asc")
    try:
        page = int(request.args.get("page", "1"))
    except ValueError:
        page = 0
    if sort not in SORTS or order not in ("asc", "desc") or not 1 <= page <= 10_000:
        raise InvalidDashboardQuery()
    return {"sort": sort, "desc": order == "desc", "page": page}


def register(bp: Blueprint) -> None:
    """Add the dashboard's routes to the extension's blueprint (whose error
    handler answers Redis unavailable with the 503 JSON)."""

    def guard() -> State:
        state = get_state()
        check = state.hooks.dashboard_auth
        if not state.settings.dashboard:
            raise _off(state, check)
        if check is None:
            log.error(
                "SSE_RESILIENCE_DASHBOARD is on but no @sse.dashboard_auth is "
                "set: refusing to serve an open admin page"
            )
            raise DashboardNotFound()
        if not check():
            raise DashboardForbidden()
        return state

    @bp.get("/_dashboard")
    def dashboard_page() -> Response:
        guard()
        return Response(
            _PAGE.read_bytes(),
            mimetype="text/html",
            headers={"Cache-Control": "no-store"},
        )

    @bp.get("/_dashboard/snapshot")
    def dashboard_snapshot() -> Response:
        state = guard()
        body = jsonify(snapshot(state, **_params()))
        body.headers["Cache-Control"] = "no-store"
        return body

    @bp.get("/_dashboard/stream")
    def dashboard_stream() -> Response:
        state = guard()
        params = _params()
        return Response(
            _frames(state, params),
            mimetype="text/event-stream",
            headers={
                "Cache-Control": "no-cache, no-transform",
                "X-Accel-Buffering": "no",
            },
        )


#: The process that last logged, per app, that its dashboard is off.
_TOLD: weakref.WeakKeyDictionary[State, int] = weakref.WeakKeyDictionary()


def _off(state: State, check: Callable[[], bool] | None) -> DashboardNotFound:
    """The 404 of a dashboard that is off, with how to turn it on logged
    once per process. The answer says it too, but only to a user the app's
    admin check accepts: anyone else gets the same 404 as before
    (``Not found.``), so nothing more is revealed to non-admins."""
    late = "SSE_RESILIENCE_DASHBOARD" in changed_keys(
        state.config_at_init, state.app.config
    )
    hint = (
        "SSE_RESILIENCE_DASHBOARD was set after init_app, which reads the "
        "config once: set it before SSEResilience(app) / init_app."
        if late
        else "The dashboard is off: set SSE_RESILIENCE_DASHBOARD = True (before "
        "init_app) and an admin check (@sse.dashboard_auth)."
    )
    if _TOLD.get(state) != os.getpid():
        _TOLD[state] = os.getpid()
        log.warning("%s asked for: %s", request.path, hint)
    return DashboardNotFound(hint if check is not None and _admits(check) else None)


def _admits(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:  # noqa: BLE001 - a check written for a dashboard that is on
        log.debug("the dashboard's admin check failed", exc_info=True)
        return False


def _frames(state: State, params: dict[str, Any]) -> Iterator[bytes]:
    """A snapshot every :data:`REFRESH` seconds for ten minutes, then a
    reconnect hint (so a page left open re-checks its admin rights)."""
    yield wire.encode_retry(int(REFRESH * 1000))
    ends = time.monotonic() + 600
    while time.monotonic() < ends:
        try:
            yield wire.dashboard_frame(snapshot(state, **params))
        except UNAVAILABLE:
            yield wire.DASHBOARD_UNAVAILABLE
        time.sleep(REFRESH)
