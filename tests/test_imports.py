"""What importing the package pulls in: a gunicorn config file that imports
the hooks must not import Redis (gevent has not patched yet there)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import flask_sse_resilience


def imported_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(out.split())


def test_the_gunicorn_hooks_import_nothing_to_patch() -> None:
    modules = imported_after(
        "from flask_sse_resilience.gunicorn import post_worker_init, worker_exit, "
        "worker_int"
    )
    assert "redis" not in modules and "flask_sse_resilience.extension" not in modules


def test_every_public_name_resolves_on_first_use() -> None:
    for name in flask_sse_resilience.__all__:
        if name != "__version__":
            assert getattr(flask_sse_resilience, name).__name__ == name
    assert "redis" in imported_after("from flask_sse_resilience import SSEResilience")


def test_submodules_are_attributes_too() -> None:
    assert flask_sse_resilience.signals.stream_orphaned.name == "sse-stream-orphaned"
    assert not hasattr(flask_sse_resilience, "no_such_thing")


def test_the_version_is_the_installed_distributions() -> None:
    assert flask_sse_resilience.__version__ == version("flask-sse-resilience")
    assert "importlib.metadata" not in imported_after("import flask_sse_resilience")
