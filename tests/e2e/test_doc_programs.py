"""The docs' programs and commands, run as written: only hosts and ports are
substituted (see :func:`tests.docblocks.substitute`).

The quickstart's ``jobs.py`` runs under its own gunicorn command, the curl
walk runs in bash against it, and the Python client's programs run against
it with the test venv's Python (which has the ``client`` extra). The README's
programs run from the built wheel in ``test_plain_install.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from harness.redis_server import RedisServer, free_port
from tests.docblocks import (
    DOCS,
    Block,
    markdown_blocks,
    readme_block,
    rst_blocks,
    substitute,
)

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
PAGES = ("quickstart.rst", "python-client.rst", "deployment.rst", "operations.rst")


def _blocks(page: str) -> list[Block]:
    return rst_blocks(DOCS / page)


def _block(page: str, language: str, starting: str) -> Block:
    found = [
        b
        for b in _blocks(page)
        if b.language == language and b.text.lstrip().startswith(starting)
    ]
    assert len(found) == 1, f"{page}: {len(found)} {language} blocks start {starting!r}"
    return found[0]


def _environment() -> dict[str, str]:
    """The user's shell: the venv's commands first on PATH, nothing of ours
    configured (the programs say their own Redis URL)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FLASK_", "SSE_RESILIENCE_"))
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    return env


class Served:
    """A documented server command running in the background in ``folder``."""

    def __init__(self, command: str, folder: Path, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = folder / f"server-{port}.log"
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=folder,
            env=_environment(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"{self.base}/sse/static/sse-resilience.js")
                if answer.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not start:\n{self.output()}")
            time.sleep(0.1)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()
        assert "Traceback" not in self.output(), self.output()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Path:
    """An empty folder holding every program the pages tell readers to save,
    as written but for the Redis port."""
    path = tmp_path_factory.mktemp("docs")
    for page in PAGES:
        for block in _blocks(page):
            if block.saved_as:
                text = substitute(block.text, redis=redis_server.port)
                (path / block.saved_as).write_text(text)
    return path


@pytest.fixture(scope="module")
def jobs(folder: Path) -> Iterator[Served]:
    """The quickstart's app under the quickstart's gunicorn command."""
    port = free_port()
    command = _block("quickstart.rst", "sh", "gunicorn -k gevent -w 2").text
    served = Served(substitute(command.strip(), http=port), folder, port)
    yield served
    served.stop()


def _bash(script: str, folder: Path, timeout: float = 30) -> str:
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=folder,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _frames(output: str) -> list[dict[str, object]]:
    return [
        json.loads(line[6:])
        for line in output.splitlines()
        if line.startswith("data: ")
    ]


def test_quickstart_walk_streams_the_job_then_its_result(
    jobs: Served, folder: Path
) -> None:
    port = int(jobs.base.rsplit(":", 1)[1])
    follow = _block("quickstart.rst", "sh", "curl -s -c jar").text
    again = _block("quickstart.rst", "sh", 'curl -s -N -b jar "http').text
    marker = "=== the job has ended ==="
    script = substitute(f"{follow}\necho '{marker}'\n{again}", http=port)
    started = time.monotonic()
    first, after = _bash(script, folder).split(marker)
    took = time.monotonic() - started

    live = _frames(first)
    assert [f["type"] for f in live] == ["connected"] + ["progress"] * 10 + [
        "completed"
    ]
    assert [f["data"]["step"] for f in live[1:-1]] == list(range(1, 11))  # type: ignore[index]
    assert live[-1]["data"] == {"result": 42}
    assert took > 2.5, "the work is paced: progress a user can watch arrive"
    # The documented output, but for the ids and the elided middle.
    shown = _block("quickstart.rst", "text", 'data: {"type":"connected"').text
    for line in shown.splitlines():
        if line.startswith("data: ") and "…" not in line:
            assert line in first.splitlines(), line

    ended, replayed = after.split('data: {"type":"connected"', 2)[1:]
    assert [f["type"] for f in _frames('data: {"type":"connected"' + ended)] == [
        "connected",
        "completed",
    ]
    types = [f["type"] for f in _frames('data: {"type":"connected"' + replayed)]
    assert types == ["connected"] + ["progress"] * 10 + ["completed"]


@pytest.mark.parametrize(
    ("page", "starting"),
    [
        ("quickstart.rst", "gunicorn -k gevent --bind"),
        ("deployment.rst", "gunicorn -k gevent --bind"),
        ("deployment.rst", "gunicorn -k gevent -w 4"),
    ],
)
def test_factory_serves_under_each_documented_command(
    folder: Path, page: str, starting: str
) -> None:
    port = free_port()
    command = _block(page, "sh", starting).text
    served = Served(substitute(command.strip(), http=port), folder, port)
    try:
        # Nobody is signed in: the stream URLs answer 401 with a JSON body.
        answer = httpx.get(f"{served.base}/sse/streams/abc")
        assert answer.status_code == 401
        assert answer.json()["error"] == "authentication_required"
    finally:
        served.stop()


def test_deployment_config_file_serves_the_quickstart_app(
    folder: Path, tmp_path: Path
) -> None:
    """``gunicorn.conf.py`` as written (its bind port substituted), beside
    ``jobs.py``, under the documented command; a job streams to its end."""
    port = free_port()
    for name in ("jobs.py", "gunicorn.conf.py"):
        text = (folder / name).read_text()
        (tmp_path / name).write_text(substitute(text, http=port))
    command = _block("deployment.rst", "sh", "gunicorn -c gunicorn.conf.py").text
    served = Served(command.strip(), tmp_path, port)
    try:
        (tmp_path / "follow_job.py").write_text(
            substitute((folder / "follow_job.py").read_text(), http=port)
        )
        out = _run(tmp_path, "follow_job.py")
        assert out.splitlines()[-1] == "completed {'result': 42}"
    finally:
        served.stop()


def _run(folder: Path, program: str, timeout: float = 30) -> str:
    done = subprocess.run(
        [sys.executable, program],
        cwd=folder,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    assert not done.stderr, done.stderr
    return done.stdout


def _client_program(folder: Path, name: str, port: int) -> str:
    """``name`` as written but for the app's port, saved beside the others."""
    source = (folder / name).read_text()
    target = folder / f"{Path(name).stem}_{port}.py"
    target.write_text(substitute(source, http=port))
    return target.name


def test_python_client_follows_a_job(jobs: Served, folder: Path) -> None:
    port = int(jobs.base.rsplit(":", 1)[1])
    out = _run(folder, _client_program(folder, "follow_job.py", port))
    assert out.splitlines() == [f"step {n} of 10" for n in range(1, 11)] + [
        "completed {'result': 42}"
    ]


def test_python_client_follows_with_a_token(jobs: Served, folder: Path) -> None:
    port = int(jobs.base.rsplit(":", 1)[1])
    out = _run(folder, _client_program(folder, "follow_token.py", port))
    lines = out.splitlines()
    assert len(lines) == 11 and lines[-1] == "completed {'result': 42}"
    assert all(line.startswith("progress {'step': ") for line in lines[:-1])


def test_python_client_asyncio_follows_a_job(jobs: Served, folder: Path) -> None:
    port = int(jobs.base.rsplit(":", 1)[1])
    out = _run(folder, _client_program(folder, "afollow_job.py", port))
    lines = out.splitlines()
    assert lines[-1] == "completed {'result': 42}"
    assert [line.split(" ")[0] for line in lines] == ["progress"] * 10 + ["completed"]


def test_python_client_stops_a_job(jobs: Served, folder: Path) -> None:
    port = int(jobs.base.rsplit(":", 1)[1])
    out = _run(folder, _client_program(folder, "stop_job.py", port))
    lines = out.splitlines()
    assert lines[:3] == [f"progress {{'step': {n}, 'of': 10}}" for n in (1, 2, 3)]
    assert lines[3].startswith("{'status': 'cancelling'")
    assert lines[4] == "cancelled {'reason': 'changed my mind', 'by': 'user'}"
    assert len(lines) == 5


def test_the_redis_command_starts_a_throwaway_redis(tmp_path: Path) -> None:
    """The README's and the quickstart's one line, on a free port: a Redis
    that saves nothing. Stopped by the PID it reports."""
    port = free_port()
    readme = [
        b.text
        for b in markdown_blocks(DOCS.parent / "README.md")
        if b.text.startswith("redis-server")
    ]
    quickstart = _block("quickstart.rst", "sh", "redis-server").text
    assert readme == [quickstart]
    _bash(substitute(quickstart, redis=port), tmp_path)
    client = redis.Redis(port=port)
    try:
        pid = int(client.info("server")["process_id"])
        assert client.config_get("save")["save"] == ""
        assert client.config_get("appendonly")["appendonly"] == "no"
    finally:
        client.close()
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list(tmp_path.iterdir()), "it wrote files"


def test_the_quickstart_check_command_passes(folder: Path) -> None:
    command = _block("quickstart.rst", "sh", "flask --app factory").text
    out = _bash(command, folder)
    assert [line.split()[0] for line in out.splitlines()] == ["ok"] * 4, out


def test_the_check_command_as_shown(folder: Path, redis_server: RedisServer) -> None:
    """``flask --app app sse check`` beside the README's ``app.py``: every
    check shown passes against a Redis that keeps what streams need."""
    app = readme_block("python", "SSEResilience").text
    (folder / "app.py").write_text(substitute(app, redis=redis_server.port))
    shown = _block("operations.rst", "console", "$ flask --app app sse check").text
    command, *expected = shown.splitlines()
    done = subprocess.run(
        ["bash", "-c", command.removeprefix("$ ")],
        cwd=folder,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    names = [line.split(":")[0].split()[-1] for line in expected]
    assert [line.split(":")[0].split()[-1] for line in lines] == names
    assert all(line.startswith("ok ") for line in lines), done.stdout
    assert "Traceback" not in done.stderr


def test_docs_name_the_page_files_they_run() -> None:
    names = {b.saved_as for page in PAGES for b in _blocks(page) if b.saved_as}
    assert {"jobs.py", "factory.py", "follow_job.py", "stop_job.py"} <= names
    assert all(re.fullmatch(r"[\w.]+\.py", name or "") for name in names)
