"""The npm package in clients/js: its unit tests under Node's own test runner,
a strict type check of a consumer of every public type, and the served
browser files built from the same source (a stale one fails).

``make test`` installs Node, npm and the locked packages (``npm ci``) first;
without them these tests skip locally but fail in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parents[1] / "clients" / "js"


def npm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    if shutil.which("node") is None or not (JS / "node_modules").is_dir():
        message = "node or clients/js/node_modules is missing (make test installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return subprocess.run(
        ["npm", "run", "--silent", *args],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_unit_tests_pass_under_nodes_test_runner() -> None:
    done = npm("test")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# fail 0" in done.stdout


def test_a_consumer_of_every_public_type_type_checks_strictly() -> None:
    done = npm("typecheck")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_served_files_and_dist_are_built_from_the_current_source() -> None:
    done = npm("check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_packed_tarball_installs_and_imports(tmp_path: Path) -> None:
    """``npm pack``, then ``npm install <tarball>`` into an empty project
    (peer dependencies left out: React and the AI SDK are optional), and
    import each entry point's public names with Node."""
    packed = npm("pack-into", str(tmp_path))
    assert packed.returncode == 0, packed.stdout + packed.stderr
    tarball = next(tmp_path.glob("flask-sse-resilience-*.tgz"))
    project = tmp_path / "app"
    project.mkdir()
    (project / "package.json").write_text('{"name": "app", "private": true}')
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--legacy-peer-deps",
         "--offline", str(tarball)],
        cwd=project, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    script = (
        "const m = await import('flask-sse-resilience');"
        "const r = await import('flask-sse-resilience/requests').catch(() => null);"
        "console.log(typeof m.ResilientEventSource, typeof m.backoffDelay,"
        " typeof m.findKey, r === null)"
    )
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        cwd=project, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.stdout.split() == ["function", "function", "function", "true"], (
        done.stdout + done.stderr
    )
    shipped = {
        p.name for p in (project / "node_modules/flask-sse-resilience/dist").iterdir()
    }
    assert {
        "index.js",
        "index.d.ts",
        "react.js",
        "react.d.ts",
        "ai.js",
        "ai.d.ts",
    } <= shipped
