"""The kprobe VM suite: these tests run INSIDE the VM that scripts/test-kernel.sh
boots (Debian's kernel, which has kprobes), never on the host, whose kernel has none.

On the host they are collected and skipped with that reason. In the VM every test
must really run: a skip there is turned into a failure (only an explicit xfail
stands), because a skipped kprobe test proves nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
IN_VM = os.environ.get("KTUI_IN_KERNEL_VM") == "1"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE not in Path(str(item.fspath)).resolve().parents:
            continue
        item.add_marker(pytest.mark.kernel)
        if not IN_VM:
            item.add_marker(pytest.mark.skip(reason="runs inside the kprobe VM: sudo scripts/test-kernel.sh"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_VM and report.skipped and not hasattr(report, "wasxfail") and HERE in Path(str(item.fspath)).resolve().parents:
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped inside the kprobe VM, where everything must run: {reason}"


@pytest.fixture(scope="session")
def ktui_bin() -> str:
    """The venv's own `ktui` command (the one the README's commands install)."""
    return str(Path(sys.executable).parent / "ktui")


@pytest.fixture(scope="session")
def tracefs() -> Path:
    from ktui.kernel import tracefs_path

    path = tracefs_path()
    assert path is not None, "tracefs is not mounted in the VM"
    return Path(path)
