"""Snapshots: a producer's summary of its stream so far, for late joiners.

A second device opening a chat mid-answer should not replay thousands of
token events. A producer stores a snapshot (say, the text so far) with
:meth:`Producer.snapshot <flask_sse_resilience.produce.producer.Producer.snapshot>`,
or has one kept every N events by :class:`AutoSnapshot`. A client that
connects **without** a cursor then gets one ``snapshot`` event (whose id is
the last event it covers) and follows live from there; a client **with** a
cursor gets exactly the events it lacks, as always. The snapshot goes with
the terminal event: an ended stream's late joiner gets the end alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class AutoSnapshot:
    """Keep a snapshot every ``every`` events: the producer folds each sent
    event into a running state, ``state = fold(state, event_type, data)``
    starting from ``initial``, and stores that state as the snapshot after
    every ``every``-th event. For a chat answer::

        AutoSnapshot(200, lambda text, _type, data: text + data["text"], "")
    """

    every: int
    fold: Callable[[Any, str, Any], Any]
    initial: Any = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"every must be 1 or more events, got {self.every!r}")
