"""The benchmark suite's quick mode runs end to end and produces numbers.

A smoke test only: it never asserts a timing threshold (figures live in
docs/benchmarks.md, from ``make bench``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(400)]


def test_quick_suite_runs_and_reports_every_server(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench.suite", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=380,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| hold ")]
    assert rows, text
    number = re.compile(r"^[\d,.]+$")
    for row in rows:
        # Four servers, then ours in the previous run (none here) and the change.
        cells = [c.strip() for c in row.strip("|").split("|")][1:]
        assert len(cells) == 6 and all(number.match(c) for c in cells[:4]), row
        assert cells[4:] == ["n/a", ""], row
    for section in ("targets of this release", "## Concurrent generations",
                    "## Coalescing: leading edge",
                    "## Reconnect storm"):  # fmt: skip
        assert section in text, section
    generations = [line for line in text.splitlines()
                   if line.startswith(("| ours |", "| baseline |"))]  # fmt: skip
    assert len(generations) >= 3, text
    for line in generations:  # nothing lost or doubled, whatever the speed
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[6:8] == ["0", "0"], line
    assert (
        "other than 200): 0; tokens lost\nacross the reconnect: 0; doubled: 0" in text
    )
    for image in ("bench-memory.png", "bench-fanout.png", "bench-generations.png"):
        assert (tmp_path / image).stat().st_size > 1000
    assert "fan-out" in done.stdout
    # A second run compares with the first.
    assert (tmp_path / "benchmarks.json").exists()
