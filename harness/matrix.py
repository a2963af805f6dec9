"""The version matrix: every supported Python, each declared dependency at its
floor and at its newest release, and redis-py 7 beside 8.

``make matrix`` (``python -m harness.matrix``) builds the wheel once, then for
each Python 3.10-3.13 and each leg creates a fresh venv, installs the wheel
with the quick tier's test tools, and runs the quick tier of the suite
(``-m "not e2e and not browser and not slow and not topology"``) against it.
The legs:

* ``lowest``: every requirement of ``[project].dependencies`` pinned at its
  floor (``==`` the version after ``>=``), read from pyproject.toml so the
  floors tested are the floors declared;
* ``newest``: the newest releases the index serves (``--upgrade``);
* ``redis7``: newest, but redis-py held below 8 (7.x speaks RESP2 by default,
  8.x RESP3: both must work).

Each leg checks that pip installed what the leg asked for (a floor pip could
not honour fails the leg), and the table at the end says per Python and leg:
pass or fail, the test counts and the time.

A plain script rather than nox or tox: it needs nothing beyond the standard
library and ``build``, finds pyenv's interpreters by path (nox and tox look
on ``PATH``), pins floors from pyproject.toml itself, and runs two legs at a
time (the quick tier mostly waits on Redis and timers, not on a core).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the test extra brings tomli there
    import tomli as tomllib

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
LEGS = ("lowest", "newest", "redis7")
QUICK_TIER = "not e2e and not browser and not slow and not topology"
#: Tools of the ``test`` extra the quick tier never imports: linters, the
#: browser driver, plotting, profiling, packaging checks, and what only the
#: e2e, browser and bench tiers run (rq, flask-sse, h2). Leaving them out
#: keeps each venv small and keeps them from holding a floor up.
NOT_IN_QUICK_TIER = frozenset(
    {"ruff", "mypy", "playwright", "matplotlib", "py-spy", "rq", "flask-sse",
     "h2", "build", "twine", "tomli"}
)  # fmt: skip


@dataclasses.dataclass
class Leg:
    """One venv: a Python and a choice of dependency versions."""

    python: str
    leg: str
    ok: bool = False
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    seconds: float = 0.0
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    note: str = ""
    log: str = ""


def project() -> dict[str, object]:
    """``[project]`` of pyproject.toml."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        table: dict[str, object] = tomllib.load(f)["project"]
    return table


def dependencies() -> list[Requirement]:
    """The declared runtime requirements."""
    return [Requirement(r) for r in project()["dependencies"]]  # type: ignore[attr-defined]


def floors() -> dict[str, str]:
    """``{name: floor}`` for every requirement with a ``>=`` bound."""
    found: dict[str, str] = {}
    for req in dependencies():
        bounds = [s.version for s in req.specifier if s.operator == ">="]
        if not bounds:
            raise SystemExit(f"{req}: no >= floor to test")
        found[req.name.lower()] = bounds[0]
    return found


def quick_tier_tools() -> list[str]:
    """The ``test`` extra's requirements the quick tier needs."""
    extra: list[str] = project()["optional-dependencies"]["test"]  # type: ignore[index]
    return [r for r in extra if Requirement(r).name.lower() not in NOT_IN_QUICK_TIER]


def interpreter(version: str) -> str:
    """The interpreter for ``version``: ``python3.X`` on PATH, else pyenv's.
    A missing one fails the run: a matrix that skips a Python proves nothing
    about it."""
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = sorted(
        glob.glob(f"{pyenv}/versions/{version}.*/bin/python{version}"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.split("/")[-3])],
    )
    found = candidates[-1] if candidates else shutil.which(f"python{version}")
    if not found:
        raise SystemExit(f"no Python {version}: install it (pyenv install {version})")
    return found


def build_wheel(out: Path) -> Path:
    """Build the wheel once for every leg."""
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "-o", str(out), str(ROOT)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"building the wheel failed:\n{done.stdout}")
    (wheel,) = out.glob("*.whl")
    return wheel


def pip(venv: Path, *args: str) -> str:
    """Run the venv's pip; return its output, raise with it on failure."""
    done = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"pip {' '.join(args)}:\n{done.stdout}")
    return done.stdout


def installed(venv: Path) -> dict[str, str]:
    """``{name: version}`` of the venv's distributions."""
    out = pip(venv, "list", "--format", "json")
    return {d["name"].lower(): d["version"] for d in json.loads(out)}


def setup(leg: Leg, wheel: Path, work: Path) -> Path:
    """A fresh venv for ``leg`` with the wheel and the quick tier's tools."""
    venv = work / f"py{leg.python}-{leg.leg}"
    subprocess.run([interpreter(leg.python), "-m", "venv", str(venv)], check=True)
    args = ["install", "--no-compile", "-q", f"{wheel}", *quick_tier_tools()]
    if leg.leg == "lowest":
        pins = work / f"floors-{leg.python}.txt"
        pins.write_text("".join(f"{n}=={v}\n" for n, v in floors().items()))
        args += ["-c", str(pins)]
    else:
        args += ["--upgrade", "--upgrade-strategy", "eager"]
        if leg.leg == "redis7":
            args.append("redis<8")
    pip(venv, *args)
    versions = installed(venv)
    leg.versions = {n: versions.get(n, "-") for n in [*floors(), "greenlet"]}
    if leg.leg == "lowest":
        for name, floor in floors().items():
            if Version(versions.get(name, "0")) != Version(floor):
                raise RuntimeError(
                    f"{name}: installed {versions.get(name)}, floor {floor}"
                )
    if leg.leg == "redis7" and not versions["redis"].startswith("7."):
        raise RuntimeError(f"redis7: installed redis {versions['redis']}")
    return venv


def run_leg(leg: Leg, wheel: Path, work: Path, pytest_args: list[str]) -> Leg:
    """Set the leg up and run the quick tier in it."""
    started = time.monotonic()
    try:
        venv = setup(leg, wheel, work)
        done = subprocess.run(
            [str(venv / "bin/python"), "-m", "pytest", "-m", QUICK_TIER,
             "-p", "no:cacheprovider", "-q", *pytest_args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )  # fmt: skip
        leg.log = done.stdout
        leg.ok = done.returncode == 0
        # pytest's closing line; a background thread may log after it.
        closing = re.findall(
            r"^=* ?(\d+ (?:passed|failed)\b.* in [\d.]+s\b.*?) ?=*$", done.stdout, re.M
        )
        summary = closing[-1] if closing else "pytest printed no summary"
        for count, word in re.findall(
            r"(\d+) (passed|failed|skipped|errors?)", summary
        ):
            key = "errors" if word.startswith("error") else word
            setattr(leg, key, int(count))
        if not leg.ok:
            leg.note = summary
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        leg.note = str(exc).strip().splitlines()[0][:200]
        leg.log = str(exc)
    leg.seconds = time.monotonic() - started
    return leg


def table(legs: list[Leg]) -> str:
    """The matrix as a Markdown table."""
    names = list(floors())
    head = ["Python", "leg", "result", "passed", "failed", "skipped", "time", *names]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for leg in legs:
        rows.append(
            "| " + " | ".join([
                leg.python, leg.leg, "pass" if leg.ok else "FAIL", str(leg.passed),
                str(leg.failed + leg.errors), str(leg.skipped),
                f"{leg.seconds:.0f} s", *(leg.versions.get(n, "-") for n in names),
            ]) + " |"
        )  # fmt: skip
    return "\n".join(rows)


def main() -> None:
    """Run the matrix; exit non-zero if any leg failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", nargs="+", default=list(PYTHONS), choices=PYTHONS)
    parser.add_argument("--leg", nargs="+", default=list(LEGS), choices=LEGS)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the table and logs here")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to pytest")
    args = parser.parse_args()
    for version in args.python:
        interpreter(version)  # fail before building anything
    legs = [Leg(p, leg) for p in args.python for leg in args.leg]
    with tempfile.TemporaryDirectory(prefix="sse-matrix-") as tmp:
        work = Path(tmp)
        wheel = build_wheel(work / "dist")
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(run_leg, leg, wheel, work, args.pytest_args)
                       for leg in legs]  # fmt: skip
            if args.out:
                args.out.mkdir(parents=True, exist_ok=True)
            for future in concurrent.futures.as_completed(futures):
                leg = future.result()
                verdict = "pass" if leg.ok else f"FAIL {leg.note}"
                print(f"py{leg.python} {leg.leg}: {verdict} ({leg.seconds:.0f} s)",
                      flush=True)  # fmt: skip
                if args.out:  # as each leg ends, to read while the rest run
                    (args.out / f"py{leg.python}-{leg.leg}.log").write_text(leg.log)
    print(table(legs))
    if args.out:
        (args.out / "matrix.md").write_text(table(legs) + "\n")
    for leg in legs:
        if not leg.ok:
            print(f"\n=== py{leg.python} {leg.leg}: {leg.note}\n{leg.log[-3000:]}")
    sys.exit(0 if all(leg.ok for leg in legs) else 1)


if __name__ == "__main__":
    main()
