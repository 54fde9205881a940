"""The core stands without Textual: an import-linter contract, and a check that it bites."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UI = ("ktui/app", "ktui/widgets/")


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
            if any(n == "textual" or n.startswith(("textual.", "ktui.widgets", "ktui.app")) for n in names):
                if rel == "ktui/cli.py" and names == ["ktui.app_main"]:
                    continue  # the entry point starts the app lazily; it holds no core logic
                offenders.append(f"{rel}:{node.lineno} imports {names}")
    assert offenders == []
