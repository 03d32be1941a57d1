"""The shape of app/: no import cycle between its modules, services that know nothing of Flask,
no module over 500 lines.

Every import counts, at any depth (one inside a function hides a cycle, it does not remove it).
An import names one module: `from app.api import chat` is an edge to app/api/chat.py, `from app
import x` one to app/__init__.py. What Python does on the way (import a module's parent packages
first) is not an edge: every module would otherwise "import" app/__init__.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module in app/ (a package is its __init__.py)."""
    modules = {}
    for path in sorted(APP.rglob("*.py")):
        parts = list(path.relative_to(APP.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imported(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of app/ that `module` imports, anywhere in its code."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from pkg import sub` imports the module pkg.sub; `from mod import name`, mod.
            names += [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names]
    found = set()
    for name in names:
        while name not in modules and "." in name:  # `import app.x.y as z` names a module anyway
            name = name.rpartition(".")[0]
        if name in modules and name != module:
            found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of app/ it imports."""
    modules = _modules()
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def third_party_imports(path: Path) -> set[str]:
    """The top-level packages outside app/ a module imports (`flask`, `sqlalchemy`, ...)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found - {"app"}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """`start` and every module it imports, directly or not."""
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo += graph[node]
    return seen


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that returns to its start, or None."""
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> list[str] | None:
        if node in trail:
            return trail[trail.index(node) :] + [node]
        if node in done:
            return None
        for target in sorted(graph[node]):
            cycle = visit(target, trail + [node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    graph = import_graph()
    # create_app imports its blueprints inside functions only.
    assert "app.api.chat" in graph["app"]
    assert "app.config" in graph["app"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_app() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


WEB_PACKAGES = {
    "flask",
    "flask_sqlalchemy",
    "flask_migrate",
    "flask_cors",
    "flask_limiter",
    "werkzeug",
    "prometheus_client",
}


def test_services_know_nothing_of_flask() -> None:
    graph, modules = import_graph(), _modules()
    for service in (name for name in graph if name.startswith("app.services.")):
        for module in reachable(graph, service):
            web = third_party_imports(modules[module]) & WEB_PACKAGES
            assert not web, f"{service} reaches {module}, which imports {sorted(web)}"
            assert not module.startswith(("app.api", "app.observability")), f"{service} reaches {module}"


def test_no_module_in_app_over_500_lines() -> None:
    oversized = {
        str(path.relative_to(APP.parent)): lines
        for path in APP.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert oversized == {}
