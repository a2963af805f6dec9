"""The performance targets, checked against one run of the suite, and the
change of every figure since the previous run."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench.llm import DEFAULT_WINDOW, capacity

#: Where the suite keeps a run's table, to compare the next run with.
PREVIOUS = "benchmarks.json"


def _med(runs: list[dict[str, float]] | None, key: str) -> float | None:
    if not runs:
        return None
    if key == "rss_per_conn_kib":
        return runs[0][key]
    return statistics.median(run[key] for run in runs)


def _ratio(ours: float | None, base: float | None) -> float | None:
    if ours is None or base is None or base <= 0:
        return None
    return ours / base


def targets(results: dict[str, Any], size: Any) -> list[tuple[str, str, str, str]]:
    """``(target, goal, measured, verdict)`` for each target of the suite."""
    ours, base, llm = results["ours"], results["baseline"], results["llm"]
    rows: list[tuple[str, str, str, str]] = []

    def add(target: str, goal: float, measured: float | None, unit: str = "×") -> None:
        if measured is None:
            rows.append((target, f"≤ {goal:g}{unit}", "n/a", "not measured"))
            return
        verdict = "met" if measured <= goal else f"gap {measured / goal:.2f}× the goal"
        rows.append((target, f"≤ {goal:g}{unit}", f"{measured:.2f}{unit}", verdict))

    full = [n for n in size.llm.streams
            if llm.get(f"baseline/0/{n}", {}).get("share", 0) >= 0.98]  # fmt: skip
    for label, goal, what in (
        ("ours/0", 1.2, "without coalescing"),
        (f"ours/{DEFAULT_WINDOW}", 0.8, f"at the default {DEFAULT_WINDOW} ms"),
    ):
        worst = max(
            (
                llm[f"{label}/{n}"]["cpu_ms_per_1000"]
                / llm[f"baseline/0/{n}"]["cpu_ms_per_1000"]
                for n in full
            ),
            default=None,
        )
        add(f"worker CPU per delivered token {what} (worst N at full rate)", goal,
            worst)  # fmt: skip
    for label, goal, what in (("ours/0", 2.0, "without coalescing"),
                              (f"ours/{DEFAULT_WINDOW}", 0.5, "with it")):  # fmt: skip
        worst = max((llm[f"{label}/{n}"]["commands_per_token"]
                     for n in size.llm.streams), default=None)  # fmt: skip
        add(f"Redis commands per token {what}", goal, worst, "")
    labels = ("baseline/0", "ours/0", f"ours/{DEFAULT_WINDOW}")
    caps = {label: capacity(llm, label, size.llm.streams) for label in labels}
    for label in ("ours/0", f"ours/{DEFAULT_WINDOW}"):
        verdict = "met" if caps[label] >= caps["baseline/0"] else "gap"
        rows.append((f"largest N at full rate, p99 ≤ 150 ms ({label})",
                     f"≥ baseline's ({caps['baseline/0']})", str(caps[label]),
                     verdict))  # fmt: skip
    for n in (3000, 10_000):
        if f"hold{n}" in ours:
            add(f"memory per held connection, {n:,} on one stream", 1.15,
                _ratio(_med(ours[f"hold{n}"], "rss_per_conn_kib"),
                       _med(base[f"hold{n}"], "rss_per_conn_kib")))  # fmt: skip
        if f"own{n}" in ours:
            add(f"memory per held connection, {n:,} on a stream each", 1.15,
                _ratio(_med(ours[f"own{n}"], "rss_per_conn_kib"),
                       _med(base[f"own{n}"], "rss_per_conn_kib")))  # fmt: skip
        if f"fanout{n}" in ours:
            add(f"fan-out to {n:,}: time to the last client", 1.2,
                _ratio(_med(ours[f"fanout{n}"], "fanout_ms"),
                       _med(base[f"fanout{n}"], "fanout_ms")))  # fmt: skip
    return rows


def targets_markdown(results: dict[str, Any], size: Any) -> str:
    """The targets as a Markdown table."""
    lines = ["| target | goal (vs. baseline) | measured | verdict |",
             "| --- | ---: | ---: | --- |"]  # fmt: skip
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets(results, size)]
    return "\n".join(lines) + "\n"


def compare(rows: list[tuple[str, ...]], out: Path) -> list[tuple[str, ...]]:
    """The main table with the previous run's figure for ours and the change;
    saves this run's table for the next one."""
    path = (
        out.parent / PREVIOUS
        if out.name == "benchmarks.md"
        else out.with_suffix(".json")
    )
    previous: dict[str, list[str]] = {}
    if path.exists():
        previous = {row[0]: row[1:] for row in json.loads(path.read_text())}
    path.write_text(json.dumps([list(row) for row in rows], indent=0))
    compared = [(*rows[0], "ours, previous run", "change")]
    for row in rows[1:]:
        before = previous.get(row[0])
        old = before[0] if before else "n/a"
        compared.append((*row, old, _change(row[1], old)))
    return compared


def _change(now: str, before: str) -> str:
    try:
        a, b = float(now.replace(",", "")), float(before.replace(",", ""))
    except ValueError:
        return ""
    if b == 0:
        return "" if a == 0 else "new"
    return f"{(a - b) / abs(b) * 100:+.0f} %"
