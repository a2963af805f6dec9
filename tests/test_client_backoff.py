from __future__ import annotations

import random

from flask_sse_resilience.client import backoff_delay


def test_full_jitter_bounds_and_cap() -> None:
    top = 0.999999
    ceilings = [backoff_delay(a, 0.5, 15.0, lambda: top) for a in range(8)]
    assert [round(c, 3) for c in ceilings] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        15.0,
        15.0,
        15.0,
    ]
    assert backoff_delay(3, 0.5, 15.0, lambda: 0.0) == 0.0
    assert backoff_delay(-1, 0.5, 15.0, lambda: top) < 0.5
    rng = random.Random(7)
    samples = [backoff_delay(3, 0.5, 15.0, rng.random) for _ in range(2000)]
    assert 0 <= min(samples) < 0.4 and 3.6 < max(samples) <= 4.0
    assert len(set(samples)) > 1900  # jittered, not a fixed schedule
