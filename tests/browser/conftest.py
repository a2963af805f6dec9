"""Real headless Chromium (Debian's package) driven by Playwright's Python API.

Never downloads a browser: it launches /usr/bin/chromium. Without it the tests
skip locally, but fail in CI (CI=true), where `make test` installs it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing (make test installs Debian's chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="sse-chromium-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            # The nginx tests serve HTTP/2 with a certificate made for the run.
            ignore_https_errors=True,
        )
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    page = browser.new_page()
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
    page.close()


JS = Path(__file__).resolve().parents[2] / "clients" / "js"
LAB_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<title>{name}</title></head><body><div id="root"></div>
<script src="/lab/{name}.js"></script></body></html>"""


@pytest.fixture(scope="session")
def lab_bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test pages of clients/js/test/browser (real React 19, the real AI
    SDK), bundled with esbuild from the installed package: once per run,
    shared by the parallel workers (the first one in builds, under a lock)."""
    if shutil.which("node") is None or not (JS / "node_modules").is_dir():
        message = "node or clients/js/node_modules is missing (make test installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    base = tmp_path_factory.getbasetemp()
    # Under xdist every worker's base is a folder of the run's own.
    run = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out, built = run / "lab", run / "lab.built"
    with open(run / "lab.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not built.exists():
            out.mkdir(exist_ok=True)
            subprocess.run(
                ["node", str(JS / "test/browser/bundle.mjs"), str(out)],
                check=True,
                timeout=120,
            )
            built.touch()
    return out


def open_lab(page: Any, base: str, name: str, bundles: Path, query: str = "") -> None:
    """Serve the bundled test page ``name`` at ``<base>/lab/<name>.html`` (the
    app's origin, so its cookie and endpoints apply) and open it."""
    script = (bundles / f"{name}.js").read_bytes()
    html = LAB_PAGE.format(name=name)
    page.route(
        f"{base}/lab/{name}.html*",
        lambda route: route.fulfill(body=html, content_type="text/html"),
    )
    page.route(
        f"{base}/lab/{name}.js",
        lambda route: route.fulfill(body=script, content_type="text/javascript"),
    )
    page.goto(f"{base}/lab/{name}.html{query}")


def login(page: Any, base: str, user: str = "alice") -> None:
    """Sign in through the demo's /login (the session cookie)."""
    page.goto(base + "/")
    page.evaluate(
        """(user) => fetch("/login", {method: "POST",
             headers: {"Content-Type": "application/json"},
             body: JSON.stringify({user})})""",
        user,
    )
