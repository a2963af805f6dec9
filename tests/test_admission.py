"""The one admission decision (``Connection.decide``) both stream routes
answer: pure, no Redis."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from flask_sse_resilience.models import StreamMetadata, StreamState
from flask_sse_resilience.serve.admission import Connection, Refuse, Serve

NOW = datetime(2024, 1, 1, tzinfo=timezone.utc)
LEASE: Any = object()  # held; never given back here


def connection(state: StreamState, newest: str | None, leased: bool) -> Connection:
    record = StreamMetadata(
        stream_id="s", stream_type="", user_id="u", started_at=NOW,
        last_heartbeat=NOW, state=state, metadata={}, last_event_id=newest,
    )  # fmt: skip
    return Connection("s", record, None, LEASE if leased else None)


LIVE, ENDED = StreamState.ACTIVE, StreamState.COMPLETED


@pytest.mark.parametrize(
    ("state", "newest", "position", "leased", "expected"),
    [
        # A live stream: from the client's position, unless it is ahead.
        (LIVE, "5-0", None, True, Serve(None)),
        (LIVE, "5-0", "3-0", True, Serve("3-0")),
        (LIVE, "5-0", "5-0", True, Serve("5-0")),
        (LIVE, "5-0", "6-0", True, Refuse.AHEAD),
        (LIVE, None, "1-0", True, Refuse.AHEAD),  # nothing sent yet
        (LIVE, "5-0", "3-0", False, Refuse.NO_LEASE),
        (LIVE, "5-0", "6-0", False, Refuse.AHEAD),  # a 400 before a 429
        # An ended stream: the client holding its end is done (204) ...
        (ENDED, "9-0", "9-0", True, Refuse.HAS_END),
        (ENDED, "9-0", "9-0", False, Refuse.HAS_END),
        # ... else it is served, without a lease at the limit; one ahead of
        # it (Redis lost events) gets the end alone, from no position.
        (ENDED, "9-0", "3-0", False, Serve("3-0")),
        (ENDED, "9-0", None, True, Serve(None)),
        (ENDED, "9-0", "10-0", True, Serve(None)),
    ],
)
def test_decide(
    state: StreamState, newest: str | None, position: str | None, leased: bool,
    expected: Serve | Refuse,
) -> None:  # fmt: skip
    assert connection(state, newest, leased).decide(position) == expected


def test_a_borrowed_lease_is_left_to_its_owner() -> None:
    released: list[str] = []

    class Lease:
        def release(self) -> None:
            released.append("given back")

    record = connection(LIVE, "1-0", True).record
    borrowed = Connection("s", record, None, Lease(), owns_lease=False)  # type: ignore[arg-type]
    borrowed.close()
    assert released == []
    Connection("s", record, None, Lease()).close()  # type: ignore[arg-type]
    assert released == ["given back"]
