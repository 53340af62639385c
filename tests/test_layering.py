"""The import graph of the two packages: no cycles, and the hub never imports client code.

Read from the source with ``ast`` (nothing is imported): an edge is an import
that runs when a module is loaded, at its top level.  Imports inside functions
(deliberately lazy) and under ``if TYPE_CHECKING:`` do not load anything at
import time and are left out of the cycle check; the hub may not import client
code even lazily.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"statehub.hub": ROOT / "hub", "statehub": ROOT / "clients" / "statehub"}


def module_files() -> dict[str, Path]:
    """Every module of both packages by its installed name."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join((package, *parts))
            if package == "statehub" and name.startswith("statehub.hub"):
                continue  # not a client module, however the folders are laid out
            found.setdefault(name, path)
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    imports: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            pending += [*node.body, *node.orelse]
        elif isinstance(node, ast.Try):
            pending += [
                *node.body,
                *node.orelse,
                *node.finalbody,
                *(s for h in node.handlers for s in h.body),
            ]
    return imports


def imported_modules(name: str, path: Path, known: set[str], *, lazy: bool = False) -> set[str]:
    """The modules of ``known`` that loading ``name`` loads directly (with ``lazy``: that it ever imports)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = (
        [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
        if lazy
        else _top_level_imports(tree)
    )
    edges: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # ``from package import module`` loads that module; any other name comes from ``base`` itself.
            # (A package's own __init__ always loads first; that is not an edge of this graph.)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
            ]
        edges |= {target for target in targets if target in known and target != name}
    return edges


def import_graph(*, lazy: bool = False) -> dict[str, set[str]]:
    files = module_files()
    return {name: imported_modules(name, path, set(files), lazy=lazy) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_real_modules() -> None:
    """The checks below would pass on an empty graph: make sure they see the modules and their imports."""
    graph = import_graph()
    clients = [name for name in graph if not name.startswith("statehub.hub")]
    assert len(clients) > 10 and "statehub.hub.server" in graph
    assert "statehub.hub.store" in graph["statehub.hub.server"]
    assert any(graph[name] for name in clients)


def test_no_module_of_either_package_is_part_of_an_import_cycle() -> None:
    """A cycle makes import order matter and modules impossible to load alone."""
    assert cycles(import_graph()) == []


def test_the_hub_imports_no_client_code() -> None:
    """statehub.hub is the core: no module of it imports client code, not even lazily in a function."""
    leaks = {
        (module, target)
        for module, targets in import_graph(lazy=True).items()
        if module.startswith("statehub.hub")
        for target in targets
        if not target.startswith("statehub.hub")
    }
    assert leaks == set()


def test_the_cycle_check_finds_a_cycle() -> None:
    """The detector itself: a two-module loop is reported, a chain is not."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_client_and_the_hub_start_without_asyncio() -> None:
    """asyncio (~40 ms to import) is for the optional web and sites extras; pyzmq's monitor helper pulled it in."""
    code = "import sys, statehub.client, statehub.hub.server, statehub.cli.app; print(sorted(m for m in sys.modules if m.split('.')[0] == 'asyncio'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_hub_with_no_listener_and_no_schema_starts_without_loading_their_modules(tmp_path: Path) -> None:
    """CURVE (--listen), TOML (schemas) and hashlib (schema files) are imported when used: each hub start
    and each test's hub would pay ~10 ms for them otherwise."""
    code = (
        "import sys; from pathlib import Path; from statehub.hub.server import Hub, HubConfig\n"
        "hub = Hub.open(HubConfig(data_dir=Path(sys.argv[1]))); hub.announce(); hub.close()\n"
        "print(sorted(m for m in ('statehub.hub.access', 'statehub.hub.curve', 'tomllib', 'hashlib') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "data")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
