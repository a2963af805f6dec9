"""How `make test` shares the suite among pytest-xdist workers.

Each worker is its own process with its own Redis servers, gunicorns, browser
and ports (``harness.redis_server.free_port`` never hands one port to two
processes), so any test may run beside any other. Two things decide the wall
time on a small machine, and the stock schedulers get neither right:

- **Longest first.** The suite mostly waits (heartbeats, timeouts, servers
  starting), and a few tests wait for minutes. Started last, one of them is
  the whole tail; started first, it runs beside everything else. Workers
  collect the tests in the same order, so :func:`longest_first` reorders the
  collection and the scheduler hands tests out in that order.
- **Units that share a costly set-up.** Tests whose module builds something
  heavy once (a wheel and a fresh venv; every documented program under the
  documented gunicorn command) run on one worker, as one unit, so the set-up
  is made once and not once per worker. (xdist's own ``--dist loadgroup``
  would do this, but its ``xdist_group`` marks are not applied under pytest
  9.2: the groups end up spread over the workers.)

Every other test is a unit of its own, handed to whichever worker runs out of
work first.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

#: Modules whose tests run on one worker, with why.
TOGETHER = {
    # The sdist, the wheel and a venv holding the wheel alone: built once
    # per session (about 25 s of CPU) by session-scoped fixtures.
    "tests/e2e/test_plain_install.py",
    # Every program the pages tell readers to save, served by the documented
    # gunicorn command once per module.
    "tests/e2e/test_doc_programs.py",
}

#: Marks that say how long a test waits, slowest first; unmarked tests last.
RANKS = ("slow", "topology", "browser", "e2e")


def rank(item: pytest.Item) -> int:
    """Where ``item`` goes in the queue: by its slowest mark, or last."""
    for position, name in enumerate(RANKS):
        if item.get_closest_marker(name) is not None:
            return position
    return len(RANKS)


def longest_first(items: list[pytest.Item]) -> None:
    """Reorder ``items`` in place by :func:`rank`, keeping file order within
    a rank (a stable sort: every worker gets the same order)."""
    items.sort(key=rank)


class Scheduler(LoadScopeScheduling):
    """xdist's scope scheduler with a unit per test, but for the modules in
    :data:`TOGETHER`, and the queue in collection order (longest first)."""

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return module if module in TOGETHER else nodeid


def make_scheduler(config: pytest.Config, log: Any) -> Scheduler:
    """The scheduler for ``-n``; ``config.option.loadscopereorder`` is off,
    so units keep the collection's order."""
    config.option.loadscopereorder = False
    return Scheduler(config, log)
