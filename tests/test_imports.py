"""What importing the package pulls in: a gunicorn config file that imports
the hooks must not import Redis (gevent has not patched yet there)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

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


#: The names each promised import path has offered since before the package
#: was split into folders: moving a module must never move one of them.
PROMISED = {
    "flask_sse_resilience": [
        "AuthenticationRequired", "AutoSnapshot", "CompletionData",
        "ConfigurationError", "ConfigurationWarning", "ConnectionLimitExceeded",
        "Event", "InvalidEventError", "InvalidLastEventId", "InvalidStreamId",
        "InvalidStreamToken", "Producer", "ProducerConflictError",
        "RedisOutOfMemory", "RedisUnavailable", "Retention", "SSEResilience",
        "SSEResilienceError", "StoreError", "StreamCancelled", "StreamId",
        "StreamIdTaken", "StreamKeyTaken", "StreamLimitExceeded",
        "StreamMetadata", "StreamNotActiveError", "StreamNotFound",
        "StreamState", "__version__",
    ],
    "flask_sse_resilience.gunicorn": [
        "post_worker_init", "worker_exit", "worker_int", "adopt", "attach",
    ],
    "flask_sse_resilience.client": [
        "ClientEvent", "StreamUnavailable", "acancel", "afind_key", "afollow",
        "afollow_key", "backoff_delay", "cancel", "find_key", "follow",
        "follow_key",
    ],
}  # fmt: skip


@pytest.mark.parametrize("path", sorted(PROMISED))
def test_every_public_name_imports_from_its_promised_path(path: str) -> None:
    names = PROMISED[path]
    found = imported_after(f"from {path} import {', '.join(names)}")
    assert path in found
    module = __import__(path, fromlist=["_"])
    if hasattr(module, "__all__"):
        assert set(names) <= set(module.__all__)


def test_submodules_are_attributes_too() -> None:
    assert flask_sse_resilience.signals.stream_orphaned.name == "sse-stream-orphaned"
    assert not hasattr(flask_sse_resilience, "no_such_thing")


@pytest.mark.parametrize("hidden", ["httpx", "httpx_sse"])
@pytest.mark.parametrize("module", ["client", "client.aio", "client.algorithm"])
def test_the_client_without_its_extra_names_the_install_command(
    tmp_path: Path, hidden: str, module: str
) -> None:
    """As if installed without ``[client]``: ``sys.modules[name] = None``
    makes importing ``name`` fail exactly as a missing package does."""
    (tmp_path / "sitecustomize.py").write_text(
        f"import sys\nsys.modules[{hidden!r}] = None\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", f"import flask_sse_resilience.{module}"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "ModuleNotFoundError: The Python client (flask_sse_resilience.client) "
        f"needs {hidden}, which is not installed: pip install "
        "'flask-sse-resilience[client]'"
    )


def test_the_version_is_the_installed_distributions() -> None:
    assert flask_sse_resilience.__version__ == version("flask-sse-resilience")
    assert "importlib.metadata" not in imported_after("import flask_sse_resilience")
