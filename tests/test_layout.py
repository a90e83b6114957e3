"""The house's arrows, read from the source: every import, at the top, inside functions and under
TYPE_CHECKING. A cycle between rooms of edge/, or an arrow the design card forbids, fails here
before anyone has to untangle it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = ("edge", "interlock", "drivers", "sync", "simulators", "fleet")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module of ours this file imports, relative imports resolved."""
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            found.add(stem)
            found.update(f"{stem}.{alias.name}" for alias in node.names)  # `from . import lane`
    return {name for name in found if name.split(".")[0] in OURS}


def _room(module: str) -> str:
    """edge.daemon.station -> edge.daemon; edge.logs -> edge.logs; sync.profile -> sync."""
    parts = module.split(".")
    if parts[0] != "edge":
        return parts[0]
    return ".".join(parts[:2]) if len(parts) > 1 else "edge"


def _graph() -> dict[str, set[str]]:
    known = {_module(p) for top in OURS for p in (ROOT / top).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for top in OURS:
        for path in (ROOT / top).rglob("*.py"):
            room = _room(_module(path))
            targets = {_room(name) for name in _imports(path) if name in known}
            graph.setdefault(room, set()).update(targets - {room, "edge"})
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for nxt in sorted(graph.get(node, ())):
            if (found := visit(nxt, path + [node])) is not None:
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        if (found := visit(start, [])) is not None:
            return found
    return None


def test_no_cycle_between_the_rooms_of_edge() -> None:
    graph = {room: {t for t in targets if t.startswith("edge.")} for room, targets in _graph().items() if room.startswith("edge.")}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_status_page_never_reaches_for_the_daemon() -> None:
    assert "edge.daemon" not in _graph()["edge.status"]


def test_the_design_cards_arrows() -> None:
    graph = _graph()
    assert graph["interlock"] == set(), "interlock imports nothing of ours"
    for lower in ("sync", "drivers"):
        assert not {t for t in graph[lower] if t.startswith("edge")}, f"{lower} never imports edge"


def test_the_reader_finds_a_cycle_it_is_shown() -> None:
    """The cycle finder itself: a circle through three rooms is found, a chain is not."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
