"""A plain install runs the README as written.

The sdist and the wheel are built from this tree; the wheel ALONE goes into a
fresh venv (the README's install line names no extras; pip brings the
dependencies from the configured indexes, as a user's would). There, with a
private Redis, the README's own ``app.py`` (only the Redis port substituted)
is saved in an empty folder and served by the README's own gunicorn and
``flask run`` commands, and the README's own curl lines, run by bash, follow
a job to its ``completed`` event. Every command comes from README.md through
:mod:`tests.docblocks`, never from a copy.
"""

from __future__ import annotations

import email
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.version import Version

from harness.demo_server import wait_until_serving
from harness.matrix import project
from harness.redis_server import RedisServer, free_port
from tests.docblocks import ROOT, readme_block, substitute

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

#: The sdist ships the package, docs, examples, the JS client's source, the
#: licence and the changelog, and no tests (they could not run without
#: harness/, Redis and the rest; the sdist ships runnable tests or none).
SDIST_MUST_HAVE = (
    "LICENSE",
    "CHANGES.rst",
    "README.md",
    "pyproject.toml",
    "setup.py",
    "docs/index.rst",
    "examples/demo/app.py",
    "clients/js/package.json",
    "flask_sse_resilience/py.typed",
)
SDIST_MUST_NOT_HAVE = re.compile(
    r"^(tests|harness|bench|clients/js/node_modules|clients/js/test|docs/_build)/"
)


@dataclass(frozen=True)
class Dists:
    """The built distributions."""

    sdist: Path
    wheel: Path

    @property
    def version(self) -> str:
        """The version in the wheel's metadata."""
        with zipfile.ZipFile(self.wheel) as whl:
            name = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
            return str(email.message_from_bytes(whl.read(name))["Version"])


@dataclass(frozen=True)
class PlainVenv:
    """A fresh venv holding the wheel and what pip brought for it."""

    path: Path

    @property
    def env(self) -> dict[str, str]:
        """The environment a user of this venv has: its bin first on PATH, and
        nothing of this test run's (no PYTHONPATH to the source tree, no
        FLASK_* or SSE_RESILIENCE_* settings)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
            and not k.startswith(("FLASK_", "SSE_RESILIENCE_"))
        }
        env["PATH"] = f"{self.path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.path)
        return env

    def run(
        self, *args: str, cwd: Path, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a command as the venv's user would, in ``cwd``."""
        return subprocess.run(
            args, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def python(self, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        """Run Python code with the venv's interpreter."""
        return self.run(str(self.path / "bin/python"), "-c", code, cwd=cwd)

    def pip(self, *args: str) -> None:
        """The venv's pip; fails the test with pip's output on an error."""
        done = self.run(str(self.path / "bin/python"), "-m", "pip", *args,
                        cwd=self.path, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr

    def distributions(self) -> set[str]:
        """``name==version`` of everything installed."""
        done = self.run(str(self.path / "bin/python"), "-m", "pip", "freeze",
                        "--all", cwd=self.path)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return set(done.stdout.split())


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The sdist and the wheel, built once (``python -m build``)."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # setuptools' warnings about the package layout (data folders missing
    # from `packages`, say) must not come back.
    assert "absent from the `packages` configuration" not in done.stdout + done.stderr
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Dists(sdist, wheel)


@pytest.fixture(scope="session")
def plain_venv(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> PlainVenv:
    """A fresh venv with the wheel alone, as the README's install line does."""
    install = readme_block("sh", "pip install")
    # The README's install line names no extras: the test installs just that.
    assert install.text.strip() == "pip install flask-sse-resilience", install.where
    path = tmp_path_factory.mktemp("plain") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    venv = PlainVenv(path)
    venv.pip("install", "--no-compile", "-q", str(dists.wheel))
    return venv


@pytest.fixture
def app_folder(tmp_path: Path, redis_server: RedisServer) -> Path:
    """An empty folder holding the README's ``app.py``, its Redis port
    substituted and nothing else changed."""
    block = readme_block("python", "SSEResilience")
    assert block.saved_as == "app.py", block.where
    assert "6379" in block.text, "the README's app no longer names the Redis port"
    folder = tmp_path / "myapp"
    folder.mkdir()
    (folder / "app.py").write_text(substitute(block.text, redis=redis_server.port))
    return folder


@pytest.fixture
def pristine(plain_venv: PlainVenv) -> Iterator[PlainVenv]:
    """The plain venv, checked to hold what the wheel brought and nothing
    more before and after the test (a test that installs an extra removes it)."""
    before = plain_venv.distributions()
    assert not any(d.lower().startswith(("httpx", "pytest")) for d in before), before
    yield plain_venv
    assert plain_venv.distributions() == before


def serve(venv: PlainVenv, command: str, folder: Path, port: int) -> tuple[str, str]:
    """Start the README's ``command`` (port substituted) with bash in
    ``folder``, follow one job with the README's curl lines, stop the server;
    return (curl's output, the server's log)."""
    line = substitute(command, http=port).strip()
    log_path = folder / "server.log"
    # gunicorn (25 and later) puts its control socket under $HOME: a home of
    # its own, so no other gunicorn on the machine shares it.
    home = folder / "home"
    home.mkdir(exist_ok=True)
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            ["bash", "-c", line], cwd=folder, env={**venv.env, "HOME": str(home)},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", server, log_path.read_text)
        curl = readme_block("sh", "curl -s -N")
        followed = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", substitute(curl.text, http=port)],
            cwd=folder, env=venv.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert followed.returncode == 0, followed.stderr
    finally:
        stop(server)
    return followed.stdout, log_path.read_text()


def stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (bash, the server, its workers),
    as Ctrl-C or a process manager would; SIGKILL it if it lingers."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return  # the whole group has exited already
        try:
            server.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def assert_as_documented(output: str) -> None:
    """``output`` is what the README says curl prints: its ``data:`` lines in
    order (an elided id or "…" matches anything), five progress steps, then the
    result; every event after ``connected`` carries an ``id:``."""
    expected = readme_block("text", '"type":"completed"')
    shown = [x for x in expected.text.splitlines() if x.startswith("data: ")]
    frames = [f for f in output.strip().split("\n\n") if f.strip()]
    data = [
        line for f in frames for line in f.splitlines() if line.startswith("data: ")
    ]
    position = 0
    for line in shown:
        pattern = ".*?".join(re.escape(part) for part in line.split("…"))
        while position < len(data) and not re.fullmatch(pattern, data[position]):
            position += 1
        assert position < len(data), f"{line!r} ({expected.where}) not in:\n{output}"
    events = [json.loads(line.removeprefix("data: ")) for line in data]
    assert [e["type"] for e in events] == ["connected", *["progress"] * 5, "completed"]
    assert [e["data"]["step"] for e in events[1:6]] == [1, 2, 3, 4, 5]
    assert events[-1]["data"] == {"result": 42}
    assert all(re.search(r"^id: \d+-\d+$", f, re.M) for f in frames[1:]), output


def test_the_distributions_hold_what_a_user_expects(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    missing = [n for n in SDIST_MUST_HAVE if n not in names]
    assert not missing, missing
    assert not sorted(n for n in names if SDIST_MUST_NOT_HAVE.match(n))
    with zipfile.ZipFile(dists.wheel) as whl:
        in_wheel = set(whl.namelist())
    # Every file of the package (Lua scripts, served JS, py.typed, in any
    # subpackage to come) is in the wheel, and the licence beside its metadata.
    package = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "flask_sse_resilience").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert package - in_wheel == set()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in in_wheel)
    assert not [n for n in in_wheel if n.split("/")[0] in ("tests", "harness", "bench")]
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict",
         str(dists.sdist), str(dists.wheel)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_the_version_is_the_built_one(
    pristine: PlainVenv, tmp_path: Path, dists: Dists
) -> None:
    done = pristine.python(
        "import flask_sse_resilience as f; print(f.__version__); print(f.__file__)",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    version, where = done.stdout.split()
    assert version == dists.version
    assert Version(version) == Version(str(project()["version"]))
    # The installed copy, not this source tree.
    assert where.startswith(str(pristine.path)), where


def test_the_readme_under_gunicorn(pristine: PlainVenv, app_folder: Path) -> None:
    command = readme_block("sh", "gunicorn -k gevent").text
    output, log = serve(pristine, command, app_folder, free_port())
    assert_as_documented(output)
    assert "Traceback" not in log, log
    assert "Booting worker" in log and "gevent" in log, log


def test_the_readme_under_flask_run(pristine: PlainVenv, app_folder: Path) -> None:
    command = readme_block("sh", "flask --app app run").text
    output, log = serve(pristine, command, app_folder, free_port())
    assert_as_documented(output)
    assert "Traceback" not in log, log
    assert "Running on http://127.0.0.1:" in log, log


def test_the_cli_answers_help(pristine: PlainVenv, app_folder: Path) -> None:
    done = pristine.run("flask", "sse", "--help", cwd=app_folder)
    assert done.returncode == 0, done.stdout + done.stderr
    for command in ("streams", "show", "sweep", "stats"):
        assert re.search(rf"^\s+{command}\b", done.stdout, re.M), done.stdout
    assert "Traceback" not in done.stderr, done.stderr


def test_the_client_needs_its_extra(
    pristine: PlainVenv, tmp_path: Path, dists: Dists
) -> None:
    probe = textwrap.dedent(
        """
        import sys
        try:
            import flask_sse_resilience.client
        except ImportError as exc:
            print(type(exc).__name__, exc, sep=": ")
            sys.exit(3)
        print("imported", flask_sse_resilience.client.follow.__name__)
        """
    )
    without = pristine.python(probe, cwd=tmp_path)
    # Fails as an ImportError (ModuleNotFoundError is one), not with any
    # other exception and not by importing.
    assert without.returncode == 3, without.stdout + without.stderr
    # The message names the missing module and the install command.
    assert without.stdout.startswith("ModuleNotFoundError: ")
    assert "pip install 'flask-sse-resilience[client]'" in without.stdout
    before = pristine.distributions()
    pristine.pip("install", "--no-compile", "-q", f"{dists.wheel}[client]")
    try:
        with_extra = pristine.python(probe, cwd=tmp_path)
        assert with_extra.returncode == 0, with_extra.stdout + with_extra.stderr
        assert with_extra.stdout.strip() == "imported follow"
    finally:
        # Back to the wheel alone for the other tests of the session.
        added = sorted(d.split("==")[0] for d in pristine.distributions() - before)
        if added:
            pristine.pip("uninstall", "-y", "-q", *added)
