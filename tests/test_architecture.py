"""docs/architecture.rst states the import rules; the code keeps them.

The page's layer table names every folder and root module and what each may
import. Every import in the package (at module level, inside functions, and
under ``TYPE_CHECKING`` alike) is checked against it, and the module graph
must have no cycle, so the page cannot drift from the code.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.docblocks import DOCS, ROOT

PACKAGE = ROOT / "flask_sse_resilience"
PAGE = DOCS / "architecture.rst"


def _layers() -> dict[str, tuple[set[str], set[str]]]:
    """The page's layer table: layer name -> (its modules or folders, the
    layers it may import)."""
    text = PAGE.read_text()
    table = text[text.index(".. list-table:: Layers") :]
    table = table[: table.index("\n\n", table.index("* - Layer")) + 1]
    rows = re.split(r"\n   \* - ", table)[2:]
    layers: dict[str, tuple[set[str], set[str]]] = {}
    for row in rows:
        cells = [" ".join(c.split()) for c in re.split(r"\n     - ", row)]
        assert len(cells) == 4, f"a layer row has four cells: {cells}"
        name = re.findall(r"``([^`]+)``", cells[0])[0]
        members = set(re.findall(r"``([^`]+)``", cells[1]))
        may = set(re.findall(r"``([^`]+)``", cells[3]))
        layers[name] = (members, may)
    return layers


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports, however it imports them."""
    name = _module(path)
    here = name.split(".") if name else []
    if path.name != "__init__.py":
        here = here[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 0:
            if not (node.module or "").startswith("flask_sse_resilience"):
                continue
            base = (node.module or "").split(".")[1:]
        else:
            base = here[: len(here) - node.level + 1] + (
                node.module.split(".") if node.module else []
            )
        target = ".".join(base)
        for alias in node.names:
            submodule = ".".join([*base, alias.name])
            # ``from x import y`` imports the submodule x.y if there is one,
            # else a name of x itself.
            found.add(submodule if submodule in modules else target)
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    paths = {_module(p): p for p in PACKAGE.rglob("*.py")}
    return {m: _imports(p, set(paths)) for m, p in paths.items()}


def _layer_of(module: str, layers: dict[str, tuple[set[str], set[str]]]) -> str:
    top = module.split(".")[0]
    folder = (PACKAGE / top).is_dir()
    owners = [
        name
        for name, (members, _) in layers.items()
        if (folder and f"{top}/" in members) or (module or "__init__") in members
    ]
    assert len(owners) == 1, f"{module!r} is in {len(owners)} layers of the page"
    return owners[0]


def test_every_module_has_one_layer_on_the_page() -> None:
    layers = _layers()
    for module in _graph():
        _layer_of(module, layers)


def test_every_import_goes_where_the_page_allows() -> None:
    layers = _layers()
    wrong = []
    for module, imported in _graph().items():
        mine = _layer_of(module, layers)
        allowed = layers[mine][1]
        for target in imported:
            theirs = _layer_of(target, layers)
            if theirs not in allowed:
                wrong.append(f"{module} ({mine}) imports {target} ({theirs})")
    assert not wrong, "imports the page does not allow:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_can_fail() -> None:
    """The reader sees imports of every form, and the layers it read."""
    graph = _graph()
    assert "web.views" in graph["extension"]
    assert "state" in graph["web.views"]  # a function-level import counts too
    layers = _layers()
    assert _layer_of("store.registry", layers) != _layer_of("redisio.commands", layers)
    assert _layer_of("redisio.commands", layers) not in layers["client"][1]


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_cycle_in_the_bench_or_the_browser_client() -> None:
    bench: dict[str, set[str]] = {}
    for path in (ROOT / "bench").glob("*.py"):
        bench[path.stem] = {
            node.module.split(".")[1]
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith("bench.")
        }
    assert _cycle(bench) is None, _cycle(bench)
    js: dict[str, set[str]] = {}
    for path in (ROOT / "clients/js/src").glob("*.ts*"):
        pattern = r"^import [^;]*? from \"\./(\w+)\.js\""
        names = re.findall(pattern, path.read_text(), re.M)
        js[path.name.split(".")[0]] = set(names)
    assert js["source"], "the reader sees the client's imports"
    assert _cycle(js) is None, _cycle(js)
