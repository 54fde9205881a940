"""The shape of the code: the core stands without Textual (an import-linter contract, and a check
that it bites), Textual lives only where the UI lives, and no import cycle exists in ktui."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UI = ("ktui/app", "ktui/tui", "ktui/widgets/", "ktui/screens/")  # the only places Textual code may live


def _lint_imports() -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is not installed in this environment"
    return subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True)


def test_import_linter_contract_holds():
    result = _lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "KEPT" in result.stdout


def test_no_core_module_imports_textual_even_lazily():
    """A direct scan, so a lazy `import textual` inside a function in the core is caught too."""
    offenders = []
    for path in sorted((ROOT / "ktui").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(UI):
            continue
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            if any(n == "textual" or n.startswith(("textual.", "ktui.widgets", "ktui.screens", "ktui.app", "ktui.tui")) for n in names):
                if rel == "ktui/cli.py" and names in (["ktui.app_main"], ["ktui.app_hosts"], ["ktui.app_diff"]):
                    continue  # the entry point starts the app lazily; it holds no core logic
                offenders.append(f"{rel}:{node.lineno} imports {names}")
    assert offenders == []


def test_textual_is_imported_only_from_the_ui_paths():
    offenders = []
    for path in sorted((ROOT / "ktui").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(UI):
            continue
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(n == "textual" or n.startswith("textual.") for n in names):
                    offenders.append(rel)
    assert offenders == []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(tree: ast.AST):
    """Every import that can run, function-level ones included; `if TYPE_CHECKING:` bodies never run."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    """ktui's modules and the ktui modules each imports (`from pkg import submodule` is an edge to the
    submodule, not to the package's __init__: that is how a package's own modules reach each other)."""
    files = {_module_name(p): p for p in (ROOT / "ktui").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in _runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in files}
                continue
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            for a in node.names:
                if f"{base}.{a.name}" in files:
                    edges.add(f"{base}.{a.name}")
                elif base in files:
                    edges.add(base)
        edges.discard(name)
        graph[name] = edges
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
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
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(component)
    return cycles


def test_no_import_cycle_in_ktui():
    cycles = import_cycles(import_graph())
    assert cycles == []


def test_the_cycle_finder_finds_a_cycle():
    graph = import_graph()
    graph["ktui.recording.writer"] = graph["ktui.recording.writer"] | {"ktui.sources.replay"}
    assert any({"ktui.recording.writer", "ktui.sources.replay", "ktui.formats.ftrace"} <= c
               for c in import_cycles(graph))


# --- mypy: strict on the whole core ------------------------------------------------------------

# What mypy's strict = true turns on per module; setting any of them false relaxes a module.
STRICT_FLAGS = ("disallow_any_generics", "disallow_subclassing_any", "disallow_untyped_calls", "disallow_untyped_defs",
                "disallow_incomplete_defs", "check_untyped_defs", "disallow_untyped_decorators", "warn_return_any",
                "no_implicit_reexport", "strict_equality", "extra_checks", "warn_unused_ignores")


def _module_path(pattern: str) -> str:
    """``ktui.widgets.*`` -> ``ktui/widgets/``, ``ktui.app_main`` -> ``ktui/app_main.py``."""
    if pattern.endswith(".*"):
        return pattern[:-2].replace(".", "/") + "/"
    return pattern.replace(".", "/") + ".py"


def test_mypy_is_strict_on_the_whole_core():
    import tomllib

    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert mypy.get("strict") is True, "[tool.mypy] must say strict = true: the core is strict by default"
    assert mypy.get("files") == ["ktui"] and "exclude" not in mypy
    relaxed: set[str] = set()
    for override in mypy.get("overrides", []):
        modules = override["module"] if isinstance(override["module"], list) else [override["module"]]
        ours = [m for m in modules if m == "ktui" or m.startswith("ktui.")]
        assert not (ours and (override.get("ignore_errors") or override.get("follow_imports") in ("skip", "silent"))), \
            f"{ours}: a ktui module is never left unchecked"
        if any(override.get(flag) is False for flag in STRICT_FLAGS):
            relaxed.update(ours)
    ui = {m for m in relaxed if _module_path(m).startswith(UI)}
    assert relaxed == ui, f"core modules relaxed from strict: {sorted(relaxed - ui)}"
    for m in relaxed:  # no stale names: each relaxed module or package exists
        path = ROOT / _module_path(m)
        assert path.exists(), f"pyproject.toml relaxes {m}, which does not exist"
    assert "ktui.widgets.*" in ui and "ktui.screens.*" in ui  # the UI is what is relaxed

