"""The public client API: what ``statehub`` exports, what front ends may import, and no import cycles.

A front end (a module of statehub.cli, statehub.gui, statehub.sync_file or
statehub.eds) may import, and nothing else from statehub:

1. names in ``statehub.__all__``, from ``statehub`` itself;
2. modules of its own package; ``statehub.cli`` also the front-end packages it runs;
3. ``statehub.cli.base``, the base every command shares;
4. the hub's entry points in ``HUB_ENTRY_POINTS``: running the hub, and the
   tools for the data dir's files (snapshot and export files, restore, queued
   writes, CURVE key files, atomic writes), never a name starting with ``_``.

Standard library and third-party imports are free.  docs/clients.md ("What a
front end may import") says the same.  Imports are read from the source (ast),
lazy ones inside functions and type-only ones included.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import statehub

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {"statehub": ROOT / "clients" / "statehub", "statehub.hub": ROOT / "hub"}
FRONT_ENDS = ("statehub.cli", "statehub.gui", "statehub.sync_file", "statehub.eds", "statehub.web", "statehub.sites")
CLI_BASE = "statehub.cli.base"
HUB_ENTRY_POINTS = (
    "statehub.hub.server",  # HubConfig: what `statehub serve` runs
    "statehub.hub.command",  # run(HubConfig), configure_logging, mirror_mode: shared with python -m statehub.hub
    "statehub.hub.state_files",  # snapshot and export files
    "statehub.hub.restore",  # rebuild a stopped hub's store from a snapshot
    "statehub.hub.inbox",  # writes queued while the hub was down
    "statehub.hub.curve",  # CURVE key files and the allow-list
    "statehub.hub.atomic_file",  # write a file whole
)

PUBLIC_NAMES = [
    "BatchCommitted",
    "CaughtUp",
    "ChangePage",
    "Changed",
    "Client",
    "Committed",
    "ConflictDetail",
    "ConflictError",
    "Event",
    "Explanation",
    "HubDown",
    "HubStatus",
    "HubUnavailable",
    "InvalidRequest",
    "Item",
    "Items",
    "Keepalive",
    "Layout",
    "Listing",
    "MAX_BATCH_OPS",
    "MAX_BATCH_WRITES",
    "MAX_HISTORY_LIMIT",
    "MAX_KEY_LENGTH",
    "MAX_MESSAGE_BYTES",
    "MAX_TXN_OPS",
    "MISSING",
    "MirrorError",
    "MirrorState",
    "NotFound",
    "Op",
    "Origin",
    "OutcomeUnknown",
    "PROTOCOL_VERSION",
    "ProtocolError",
    "Queued",
    "Reading",
    "Rotated",
    "Rule",
    "SCHEMA_KEY",
    "SECRET_PLACEHOLDER",
    "Schema",
    "SiteOrigin",
    "StatehubError",
    "StorageError",
    "Subscription",
    "SubscriptionThread",
    "Synced",
    "Update",
    "Version",
    "Violation",
    "__version__",
    "age_text",
    "apply_change",
    "check_key",
    "check_prefix",
    "check_value",
    "client_key_dir",
    "env_name",
    "is_schema_key",
    "iso_time",
    "item_as_change",
    "json_text",
    "load_schema",
    "local_when_text",
    "make_client_keys",
    "new_request_id",
    "parse_schema",
    "parse_text_value",
    "resolve_data_dir",
    "schema_key_for",
    "site_text",
    "value_text",
    "when_text",
    "who_text",
    "write_ops",
]


# --- reading imports from the source ----------------------------------------------------------


@dataclass(frozen=True)
class Imported:
    """One imported thing: ``module``, and ``name`` when it came as ``from module import name``."""

    where: str  # file:line, for the failure message
    module: str
    name: str | None
    type_only: bool  # under ``if TYPE_CHECKING:``


def package_modules() -> dict[str, Path]:
    """Every module of the installed package, by its dotted name."""
    found = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def imports_of(name: str, path: Path) -> Iterator[Imported]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        for statement in block.body
        for node in ast.walk(statement)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Imported(where, alias.name, None, id(node) in type_only)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            for alias in node.names:
                yield Imported(where, module, alias.name, id(node) in type_only)


def resolved(imported: Imported, modules: dict[str, Path]) -> str:
    """The module an import really loads (``from statehub import X`` loads X's own module)."""
    if imported.name is not None:
        if imported.module == "statehub" and imported.name in statehub._WHERE:
            return statehub._WHERE[imported.name]
        if f"{imported.module}.{imported.name}" in modules:
            return f"{imported.module}.{imported.name}"
    return imported.module


def is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def refusal(importer: str, imported: Imported, modules: dict[str, Path]) -> str | None:
    """Why ``importer`` (a front-end module) may not import this; None when it may."""
    module, name = imported.module, imported.name
    if not is_within(module, "statehub"):
        return None
    if name is not None and name.startswith("_") and not name.endswith("__"):
        return f"{imported.where}: {module}.{name} is private"
    if module == "statehub":
        if name is None or name in statehub.__all__:
            return None
        return f"{imported.where}: {name!r} is not in statehub.__all__"
    target = resolved(imported, modules)
    own = next(package for package in FRONT_ENDS if is_within(importer, package))
    if is_within(target, own) or target == CLI_BASE:
        return None
    if own == "statehub.cli" and any(is_within(target, package) for package in FRONT_ENDS):
        return None
    if any(is_within(target, entry) for entry in HUB_ENTRY_POINTS):
        return None
    return f"{imported.where}: {target} is not public (use a name in statehub.__all__)"


# --- the tests ---------------------------------------------------------------------------------


def test_all_is_pinned() -> None:
    """Adding or removing a public name is a decision: this list changes with it."""
    assert sorted(statehub.__all__) == PUBLIC_NAMES


def test_every_public_name_resolves_to_what_its_table_names() -> None:
    """__all__ (what type checkers read) and the lazy-loading table agree, and every name loads."""
    assert set(statehub.__all__) == {"__version__", *statehub._WHERE}
    for name in statehub._WHERE:
        assert getattr(statehub, name) is not None, name
    assert statehub.Event == statehub.Update | statehub.Synced | statehub.CaughtUp | statehub.HubDown


def test_every_type_the_client_returns_is_public() -> None:
    """What a Client method or an event hands back can be named from statehub alone."""
    import typing

    from statehub import client, replica, subscription

    # Names the modules import for type checkers only, resolved through the public API.
    public = {name: getattr(statehub, name) for name in statehub._WHERE}
    hints: list[object] = []
    for name in dir(client.Client):
        method = getattr(client.Client, name)
        if not name.startswith("_") and callable(method):
            hints.append(typing.get_type_hints(method, {**vars(client), **public}).get("return"))
    for event in (subscription.Update, subscription.Synced, subscription.CaughtUp, subscription.HubDown):
        hints.extend(typing.get_type_hints(event, {**vars(replica), **vars(subscription), **public}).values())
    named: set[str] = set()
    for hint in hints:
        stack = [hint]
        while stack:
            current = stack.pop()
            stack.extend(typing.get_args(current))
            module = getattr(current, "__module__", "")
            if module.startswith("statehub") and hasattr(current, "__name__"):
                named.add(current.__name__)
    assert named and named <= set(statehub.__all__), sorted(named - set(statehub.__all__))


def test_front_ends_import_only_the_public_api() -> None:
    """cli, gui, sync_file and eds import statehub's public names, their own modules, the CLI base and
    the hub's entry points: nothing else (so they cannot bypass the Client again)."""
    modules = package_modules()
    front_ends = [name for name in modules if any(is_within(name, package) for package in FRONT_ENDS)]
    assert len(front_ends) > 30  # the scan sees the front ends at all
    refused = [
        reason
        for importer in front_ends
        for imported in imports_of(importer, modules[importer])
        if (reason := refusal(importer, imported, modules)) is not None
    ]
    assert refused == []


def test_front_ends_get_subscriptions_only_from_the_client() -> None:
    """No front end constructs a Subscription or SubscriptionThread: Client.subscribe hands out the one
    that follows the client's own hub (remote included)."""
    modules = package_modules()
    built = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for name, path in modules.items()
        if any(is_within(name, package) for package in FRONT_ENDS)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and ast.unparse(node.func).rpartition(".")[2] in ("Subscription", "SubscriptionThread")
    ]
    assert built == []


def test_the_import_check_catches_a_private_import() -> None:
    """The rule above refuses what it should: a private module, a private name, a name outside __all__."""
    modules = package_modules()
    cases = [
        Imported("x.py:1", "statehub.subscription", "Subscription", False),
        Imported("x.py:2", "statehub.client", "_current_user", False),
        Imported("x.py:3", "statehub", "Connection", False),
        Imported("x.py:4", "statehub.hub.store", "Store", True),
    ]
    assert all(refusal("statehub.gui.window", case, modules) for case in cases)
    allowed = [
        Imported("x.py:5", "statehub", "Client", False),
        Imported("x.py:6", "statehub.gui.model", "View", False),
        Imported("x.py:7", "statehub.cli.base", "Settings", False),
        Imported("x.py:8", "statehub.hub.atomic_file", "write_atomically", False),
    ]
    assert not any(refusal("statehub.gui.window", case, modules) for case in allowed)


def test_the_package_has_no_import_cycles() -> None:
    """No module imports one that (directly or not) imports it back, lazy imports included; type-only
    imports do not count, since they never run."""
    modules = package_modules()
    graph = {
        name: {
            target
            for imported in imports_of(name, path)
            if not imported.type_only and (target := resolved(imported, modules)) in modules and target != name
        }
        for name, path in modules.items()
    }
    assert _cycles(graph) == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_the_cycle_check_finds_a_cycle() -> None:
    """The check itself works: a -> b -> c -> a is reported, a lone edge is not."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
