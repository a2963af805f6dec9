"""The docs' code cannot rot: every block says what it is, every program and
command is run by a named test, and every fragment still names things that
exist (imports, methods, keyword arguments, config keys, JS exports).

The programs and commands themselves run in ``tests/e2e/test_doc_programs.py``
and ``tests/e2e/test_plain_install.py``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flask_sse_resilience import SSEResilience
from flask_sse_resilience.produce.producer import Producer
from flask_sse_resilience.settings import DEFAULTS
from tests.docblocks import README, ROOT, Block, all_blocks

BLOCKS = all_blocks()

#: What a block may be: programs and fragments (python), commands (sh), a
#: command shown with what it prints (console), browser code (html,
#: javascript, typescript, tsx), and what is shown, not run: output and wire
#: frames (text), config files (yaml, nginx).
LANGUAGES = {"python", "sh", "text", "html", "javascript", "typescript", "tsx",
             "yaml", "nginx", "json", "console"}  # fmt: skip

#: Every program, by page and the file name its text tells readers to save
#: it as, and the test that runs it as written.
PROGRAMS = {
    ("README.md", "app.py"): "tests/e2e/test_plain_install.py",
    ("docs/quickstart.rst", "jobs.py"): "tests/e2e/test_doc_programs.py",
    ("docs/quickstart.rst", "factory.py"): "tests/e2e/test_doc_programs.py",
    ("docs/python-client.rst", "follow_job.py"): "tests/e2e/test_doc_programs.py",
    ("docs/python-client.rst", "follow_token.py"): "tests/e2e/test_doc_programs.py",
    ("docs/python-client.rst", "afollow_job.py"): "tests/e2e/test_doc_programs.py",
    ("docs/python-client.rst", "stop_job.py"): "tests/e2e/test_doc_programs.py",
    ("docs/deployment.rst", "gunicorn.conf.py"): "tests/e2e/test_doc_programs.py",
}

#: Every shell block, by page and its first line, and what runs it.
COMMANDS = {
    ("README.md", "pip install flask-sse-resilience"): "test_plain_install.py",
    ("README.md", "redis-server --port 6379"): "test_doc_programs.py (the flags)",
    ("README.md", "gunicorn -k gevent"): "test_plain_install.py",
    ("README.md", "url=$(curl"): "test_plain_install.py",
    ("README.md", "flask --app app run"): "test_plain_install.py",
    ("README.md", "make demo"): "make test is CI; make demo: test_doc_programs.py",
    ("docs/quickstart.rst", "pip install flask-sse-resilience"): "plain install",
    ("docs/quickstart.rst", "redis-server --port 6379"): "test_doc_programs.py",
    ("docs/quickstart.rst", "gunicorn -k gevent -w 2"): "test_doc_programs.py",
    ("docs/quickstart.rst", "curl -s -c jar"): "test_doc_programs.py",
    ("docs/quickstart.rst", 'curl -s -N -b jar "http'): "test_doc_programs.py",
    ("docs/quickstart.rst", "gunicorn -k gevent --bind"): "test_doc_programs.py",
    ("docs/quickstart.rst", "make demo"): "make test is CI itself",
    ("docs/quickstart.rst", "flask --app factory"): "test_doc_programs.py",
    ("docs/python-client.rst", "pip install 'flask-sse-resilience[client]'"): (
        "test_plain_install.py"
    ),
    ("docs/browser-client.rst", "npm install path/to"): (
        "test_js_package.py packs the package and installs the tarball"
    ),
    ("docs/stopping.rst", "rq worker --url"): "test_rq_worker.py, these flags",
    ("docs/deployment.rst", "pip install flask-sse-resilience"): (
        "test_plain_install.py"
    ),
    ("docs/deployment.rst", "gunicorn -k gevent --bind"): "test_doc_programs.py",
    ("docs/deployment.rst", "gunicorn -k gevent -w 4"): "test_doc_programs.py",
    ("docs/deployment.rst", "gunicorn -c gunicorn.conf.py"): "test_doc_programs.py",
    ("docs/deployment.rst", "nginx -p /srv/yourapp"): (
        "test_nginx.py::test_the_documented_command_runs_on_a_fresh_prefix"
    ),
    ("docs/operations.rst", "$ flask --app app sse check"): "test_doc_programs.py",
}

#: Names a fragment may use without defining them, and what they stand for.
STANDS_FOR: dict[str, Any] = {"sse": SSEResilience, "out": Producer}


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _ids(blocks: list[Block]) -> list[str]:
    return [b.where for b in blocks]


def test_every_block_says_what_it_is() -> None:
    unknown = [
        f"{b.where}: {b.language or 'no language (a bare ::)'}"
        for b in BLOCKS
        if b.language not in LANGUAGES
    ]
    assert not unknown, "give each block a language from LANGUAGES: " + ", ".join(
        unknown
    )


def test_every_program_is_run_by_a_test() -> None:
    programs = [b for b in BLOCKS if b.is_program]
    unnamed = [b.where for b in programs if b.saved_as is None]
    assert not unnamed, (
        "a program's lead says 'Save this as ``name.py``'; a block that is not "
        f"a complete program says 'A fragment' or 'An excerpt': {unnamed}"
    )
    found = {(_rel(b.path), b.saved_as) for b in programs}
    assert found == set(PROGRAMS)
    for runner in set(PROGRAMS.values()):
        assert (ROOT / runner).exists(), runner


def test_every_command_is_run_by_a_test() -> None:
    commands = [b for b in BLOCKS if b.language in {"sh", "console"}]
    claimed = {
        b.where: [
            k for k in COMMANDS if k[0] == _rel(b.path) and b.text.startswith(k[1])
        ]
        for b in commands
    }
    unclaimed = [where for where, keys in claimed.items() if len(keys) != 1]
    assert not unclaimed, f"commands no test claims (exactly once): {unclaimed}"
    used = {key for keys in claimed.values() for key in keys}
    assert used == set(COMMANDS), "COMMANDS lists a block that is gone"


# -- Python fragments -----------------------------------------------------


def _resolve(dotted: str) -> Any:
    """Import ``a.b.c`` as a module, or a module and attributes after it."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name)
        return found
    raise ImportError(dotted)


class _Checker(ast.NodeVisitor):
    """Finds names a fragment uses that no longer exist."""

    def __init__(self) -> None:
        self.bound: dict[str, Any] = dict(STANDS_FOR)
        self.problems: list[str] = []

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            try:
                module = importlib.import_module(alias.name)
            except ImportError as exc:
                self.problems.append(f"import {alias.name}: {exc}")
                continue
            self.bound[alias.asname or alias.name.split(".")[0]] = module

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module_name = node.module or ""
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            self.problems.append(f"from {module_name}: {exc}")
            return
        for alias in node.names:
            if not hasattr(module, alias.name):
                try:
                    importlib.import_module(f"{module_name}.{alias.name}")
                except ImportError:
                    self.problems.append(f"{module_name} has no {alias.name}")
                    continue
            self.bound[alias.asname or alias.name] = _resolve(
                f"{module_name}.{alias.name}"
            )

    def _owner(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Name):
            return self.bound.get(node.id)
        if isinstance(node, ast.Attribute):
            owner = self._owner(node.value)
            if owner is None or not _ours(owner):
                return None  # never touch a proxy such as flask.session
            return getattr(owner, node.attr, None)
        return None

    def visit_Attribute(self, node: ast.Attribute) -> None:
        owner = self._owner(node.value)
        if owner is not None and _ours(owner) and not hasattr(owner, node.attr):
            self.problems.append(f"{ast.unparse(node)}: no such attribute")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        function = self._owner(node.func)
        if function is not None and callable(function) and _ours(function):
            try:
                signature = inspect.signature(function)
            except (TypeError, ValueError):
                signature = None
            if signature is not None:
                accepts_any = any(
                    p.kind is p.VAR_KEYWORD for p in signature.parameters.values()
                )
                for keyword in node.keywords:
                    name = keyword.arg
                    if name and not accepts_any and name not in signature.parameters:
                        self.problems.append(
                            f"{ast.unparse(node.func)}() takes no {name}="
                        )
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        key = node.slice
        if (
            isinstance(key, ast.Constant)
            and isinstance(key.value, str)
            and key.value.startswith("SSE_RESILIENCE_")
            and key.value not in DEFAULTS
        ):
            self.problems.append(f"{key.value} is not a setting")
        self.generic_visit(node)


def _ours(thing: Any) -> bool:
    """Whether ``thing`` is a module, class or function of the package (never
    touching a proxy such as ``flask.session``, which needs a request)."""
    if not (
        inspect.ismodule(thing) or inspect.isclass(thing) or inspect.isroutine(thing)
    ):
        return False
    module = thing.__name__ if inspect.ismodule(thing) else thing.__module__
    return str(module).startswith("flask_sse_resilience")


PYTHON_FRAGMENTS = [b for b in BLOCKS if b.language == "python" and b.is_fragment]


@pytest.mark.parametrize("block", PYTHON_FRAGMENTS, ids=_ids(PYTHON_FRAGMENTS))
def test_python_fragment_names_what_exists(block: Block) -> None:
    try:
        tree = ast.parse(block.text)
    except SyntaxError as exc:
        pytest.fail(f"{block.where}: not Python: {exc}")
    checker = _Checker()
    checker.visit(tree)
    assert not checker.problems, f"{block.where}: {checker.problems}"


@pytest.mark.parametrize(
    "block",
    [b for b in BLOCKS if b.is_program],
    ids=_ids([b for b in BLOCKS if b.is_program]),
)
def test_python_program_names_what_exists(block: Block) -> None:
    """Programs run in the e2e suite; this quicker check runs with the unit
    tests, so a rename shows up in ``make unit`` too."""
    checker = _Checker()
    checker.visit(ast.parse(block.text))
    assert not checker.problems, f"{block.where}: {checker.problems}"


# -- Settings named anywhere in the docs ----------------------------------


def test_every_setting_the_docs_name_exists() -> None:
    texts = [README.read_text()] + [
        p.read_text() for p in (ROOT / "docs").glob("*.rst")
    ]
    named = {
        key.rstrip("_")
        for text in texts
        for key in re.findall(r"SSE_RESILIENCE_[A-Z0-9_]+", text)
    }
    unknown = sorted(named - set(DEFAULTS) - {"SSE_RESILIENCE"} - MISSPELT)
    assert not unknown, f"the docs name settings that do not exist: {unknown}"


#: Keys the configuration page shows as the misspellings that get a warning.
MISSPELT = {"SSE_RESILIENCE_HEARTBEAT", "SSE_RESILIENCE_URLPREFIX"}


def test_the_misspelt_examples_are_warned_about() -> None:
    from flask import Flask

    from flask_sse_resilience.errors import ConfigurationWarning

    for key in MISSPELT:
        app = Flask(__name__)
        app.config[key] = "5"
        with pytest.warns(ConfigurationWarning, match=key):
            SSEResilience(app, redis_url="redis://127.0.0.1:1/0")
        app.extensions["sse_resilience"].close()


def test_the_nginx_excerpt_is_the_shipped_file() -> None:
    shipped = " ".join((ROOT / "examples/deploy/nginx.conf").read_text().split())
    excerpts = [b for b in BLOCKS if b.language == "nginx"]
    assert excerpts
    for block in excerpts:
        assert " ".join(block.text.split()) in shipped, block.where


# -- Browser code -----------------------------------------------------------

JS = ROOT / "clients" / "js"
ENTRY_POINTS = {
    "flask-sse-resilience": JS / "dist" / "index.d.ts",
    "flask-sse-resilience/react": JS / "dist" / "react.d.ts",
    "flask-sse-resilience/ai": JS / "dist" / "ai.d.ts",
    "/sse/static/sse-resilience.mjs": JS / "dist" / "index.d.ts",
}


def _exports(declarations: Path, seen: set[Path] | None = None) -> set[str]:
    """Every name a ``.d.ts`` file exports, following ``export * from``."""
    seen = seen or set()
    seen.add(declarations)
    text = declarations.read_text()
    names: set[str] = set()
    for group in re.findall(r"export (?:type )?\{([^}]*)\}", text):
        for item in group.split(","):
            item = item.strip().removeprefix("type ").strip()
            if item:
                names.add(item.split(" as ")[-1].strip())
    names |= set(
        re.findall(
            r"export (?:declare )?(?:class|function|const|interface|type|enum) (\w+)",
            text,
        )
    )
    for target in re.findall(r"export \* from \"(\./[^\"]+)\.js\"", text):
        path = declarations.parent / f"{target}.d.ts"
        if path not in seen:
            names |= _exports(path, seen)
    return names


BROWSER = [
    b for b in BLOCKS if b.language in {"html", "javascript", "typescript", "tsx"}
]


def _js_imports(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for names, source in re.findall(
        r"import\s*\{([^}]*)\}\s*from\s*[\"']([^\"']+)[\"']", text
    ):
        for item in names.split(","):
            item = item.strip().removeprefix("type ").strip().split(" as ")[0]
            if item:
                found.append((source, item))
    return found


@pytest.mark.parametrize("block", BROWSER, ids=_ids(BROWSER))
def test_browser_code_imports_what_the_package_exports(block: Block) -> None:
    problems = []
    for source, name in _js_imports(block.text):
        if source in ENTRY_POINTS:
            if name not in _exports(ENTRY_POINTS[source]):
                problems.append(f"{source} exports no {name}")
    index = _exports(ENTRY_POINTS["flask-sse-resilience"])
    for name in re.findall(r"\bSSEResilience\.(\w+)", block.text):
        if name not in index:
            problems.append(f"window.SSEResilience has no {name}")
    for script in re.findall(r"src=\"(/sse/static/[^\"]+)\"", block.text):
        served = ROOT / "flask_sse_resilience" / "static" / script.rsplit("/", 1)[1]
        if not served.exists():
            problems.append(f"the blueprint serves no {script}")
    assert not problems, f"{block.where}: {problems}"


def test_browser_checks_can_fail() -> None:
    """The export reader finds the names the package is known for."""
    names = _exports(ENTRY_POINTS["flask-sse-resilience"])
    assert {"ResilientEventSource", "findKey", "StreamEvent"} <= names
    assert "useResilientSSE" in _exports(ENTRY_POINTS["flask-sse-resilience/react"])


def test_fragment_checks_can_fail() -> None:
    checker: Callable[[str], list[str]]

    def checker(text: str) -> list[str]:
        found = _Checker()
        found.visit(ast.parse(text))
        return found.problems

    assert checker("from flask_sse_resilience import Nope")
    assert checker("sse.open_stream('u', colour='red')")
    assert checker("out.sned('token', {})")
    assert checker("app.config['SSE_RESILIENCE_HEARTBEAT'] = 5")
    assert not checker("sse.open_stream('u', key='chat', on_conflict='join')")
