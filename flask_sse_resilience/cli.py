"""``flask sse ...``: look at streams, run the guardian, check Redis.

A command that meets a store error (Redis down, a wrong database, a refused
password) prints one line naming the Redis (password masked), the cause and
the fix, and exits 1: never a traceback.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import click
from flask.cli import AppGroup
from redis.exceptions import RedisError

from .errors import StoreError
from .models import StreamMetadata, StreamState
from .redisio.health import run_checks
from .redisio.target import explain
from .state import State, get_state


class _Commands(AppGroup):
    """An :class:`~flask.cli.AppGroup` whose commands end on a store error
    with one line (``Error: ...``) and exit status 1."""

    def command(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], click.Command]:
        register = super().command(*args, **kwargs)
        return lambda f: register(_one_line_errors(f))


def _one_line_errors(f: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(f)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except (RedisError, StoreError) as exc:
            raise click.ClickException(_explain(exc)) from None

    return run


def _explain(exc: RedisError | StoreError) -> str:
    if isinstance(exc, StoreError):
        if not isinstance(exc.__cause__, RedisError):
            return exc.description
        exc = exc.__cause__  # RedisUnavailable: say what Redis said
    return explain(exc, _state().target)


sse_cli = _Commands("sse", help="Inspect resilient SSE streams and sweep them.")

#: How each check's outcome is shown.
_MARKS = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}

_STATES = [state.value for state in StreamState]


def _state() -> State:
    try:
        return get_state()
    except RuntimeError:
        raise click.ClickException("this app does not use SSEResilience") from None


def _ago(when: datetime | None) -> str:
    if when is None:
        return "-"
    seconds = (datetime.now(timezone.utc) - when).total_seconds()
    return f"{seconds:.0f}s"


def _records(state: State, wanted: set[str], limit: int) -> list[StreamMetadata]:
    if wanted == {"active"}:
        ids = state.registry.active_ids(limit)
        return [r for r in state.registry.get_many(ids) if r.state.value == "active"]
    # Ended streams are not indexed: scan for them (fine for a shell command).
    chosen = [r for r in state.registry.scan() if r.state.value in wanted]
    return sorted(chosen, key=lambda r: r.started_at)[:limit]


@sse_cli.command("streams")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice([*_STATES, "all"]),
    default=["active", "orphaned"],
    show_default=True,
    help="Which states to list; repeat for several.",
)
@click.option("--limit", default=100, show_default=True, help="At most this many.")
def streams_command(states: tuple[str, ...], limit: int) -> None:
    """List streams with owner, type, state, age and last heartbeat."""
    wanted = set(_STATES) if "all" in states else set(states)
    rows = _records(_state(), wanted, limit)
    click.echo(
        f"{'STREAM':<24} {'OWNER':<16} {'TYPE':<12} {'STATE':<10} "
        f"{'AGE':>7} {'HEARTBEAT':>9} {'CLIENTS':>7}"
    )
    for r in rows:
        click.echo(
            f"{r.stream_id[:24]:<24} {r.user_id[:16]:<16} {r.stream_type[:12]:<12} "
            f"{r.state.value:<10} {_ago(r.started_at):>7} "
            f"{_ago(r.last_heartbeat):>9} {r.connections:>7}"
        )
    click.echo(f"{len(rows)} stream(s)")


@sse_cli.command("show")
@click.argument("stream_id")
def show_command(stream_id: str) -> None:
    """Show one stream's record, log and stored terminal event.

    Put ``--`` before an id that starts with ``-``.
    """
    state = _state()
    record = state.registry.get(stream_id)
    if record is None:
        raise click.ClickException(f"no stream {stream_id!r} (unknown or expired)")
    for name in ("stream_id", "user_id", "stream_type", "state", "started_at",
                 "last_heartbeat", "ended_at", "seq", "last_event_id",
                 "connections", "metadata", "key", "cancel"):  # fmt: skip
        value = getattr(record, name)
        click.echo(f"{name:<15} {getattr(value, 'value', value)}")
    click.echo(f"{'log_length':<15} {state.log.length(stream_id)}")
    click.echo(f"{'ttl_seconds':<15} {state.registry.ttl(stream_id)}")
    completion = state.completions.get_completion(stream_id)
    if completion is not None:
        click.echo(f"{'terminal':<15} {completion.terminal_event_type} "
                   f"{completion.terminal_event_data!r}")  # fmt: skip


@sse_cli.command("sweep")
def sweep_command() -> None:
    """Run one guardian pass now, whoever leads."""
    result = _state().guardian.run_once(force=True)
    click.echo(
        f"orphaned {len(result.orphaned)}, pruned {result.pruned}, "
        f"in {result.seconds * 1000:.1f} ms"
    )
    for stream_id in result.orphaned:
        click.echo(f"  orphaned {stream_id}")
    for stream_id in result.cancelled:
        click.echo(f"  cancelled {stream_id} (fenced)")
    for stream_id in result.abandoned:
        click.echo(f"  asked to cancel {stream_id} (abandoned)")


@sse_cli.command("cancel")
@click.argument("stream_id")
@click.option("--reason", default=None, help="Why (at most 200 characters).")
def cancel_command(stream_id: str, reason: str | None) -> None:
    """Ask a stream to stop, wherever its producer runs (``by: "app"``)."""
    from . import opening

    try:
        after = opening.cancel(_state(), stream_id, reason, "app")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if after is None:
        raise click.ClickException(f"no stream {stream_id!r} (unknown or expired)")
    if after is StreamState.ACTIVE:
        click.echo(f"{stream_id}: cancelling (its producer stops, or is fenced)")
    elif after is StreamState.CANCELLED:
        click.echo(f"{stream_id}: cancelled")
    else:
        raise click.ClickException(f"{stream_id} had ended {after.value}")


@sse_cli.command("stats")
def stats_command() -> None:
    """Counts by state, and the guardian's last sweep."""
    state = _state()
    counts = dict.fromkeys(_STATES, 0)
    for record in _records(state, set(_STATES), limit=10**9):
        counts[record.state.value] += 1
    for name, count in counts.items():
        click.echo(f"{name:<10} {count}")
    click.echo(f"{'indexed':<10} {state.registry.index()[0]}")
    last = state.guardian.last_sweep()
    if last is not None:
        age = time.time() - last.at_ms / 1000
        click.echo(
            f"sweeps     {last.sweep}; last {age:.0f}s ago by {last.worker}: "
            f"orphaned {last.orphaned}, pruned {last.pruned}, {last.ms} ms"
        )
    else:
        click.echo("sweeps     none yet")


@sse_cli.command("check")
@click.option("--strict", is_flag=True, help="Exit 1 on a warning too.")
def check_command(strict: bool) -> None:
    """Check that Redis is reachable, new enough, writable, and will not
    evict live streams; one line per check, exit 1 if one fails."""
    state = _state()
    findings = run_checks(state.redis, state.keys, state.target)
    for finding in findings:
        click.echo(f"{_MARKS[finding.level]} {finding.name}: {finding.text}")
    failing = {"fail", "warn"} if strict else {"fail"}
    if any(finding.level in failing for finding in findings):
        raise click.exceptions.Exit(1)
