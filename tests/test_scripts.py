"""The install and test machinery (scripts/, .ci/run, Makefile), tested cheaply.

setup.sh runs in a sandbox copy of the repository with stub dpkg/apt/pip on PATH, so
its decisions (what to install, when to skip apt and pip) are checked without touching
the machine. test-kernel.sh's bad-input paths and its status-file protocol run against
stub `vng` and `qemu` commands; the real VM is exercised by the kernel suite itself.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = [
    ROOT / "scripts" / "setup.sh",
    ROOT / "scripts" / "start.sh",
    ROOT / "scripts" / "test.sh",
    ROOT / "scripts" / "test-kernel.sh",
    ROOT / "tests" / "kernel" / "guest.sh",
    ROOT / ".ci" / "run",
]
IS_ROOT = os.geteuid() == 0


def _write_exe(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_script_is_executable_bash_that_parses(script):
    assert script.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_shellcheck_is_clean():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (scripts/setup.sh installs it)")
    result = subprocess.run([shellcheck, *map(str, SCRIPTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_ci_runs_the_readme_test_command():
    text = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in text and "</dev/null" in text


def test_makefile_targets_call_the_scripts():
    if shutil.which("make") is None:
        pytest.skip("make is not installed (scripts/setup.sh installs it)")
    expect = {
        "setup": "scripts/setup.sh",
        "run": "scripts/start.sh",
        "test": "scripts/test.sh",
        "test-kernel": "scripts/test-kernel.sh",
    }
    for target, script in expect.items():
        out = subprocess.run(["make", "-n", "-C", str(ROOT), target], capture_output=True, text=True, check=True)
        assert script in out.stdout, (target, out.stdout)


# --- setup.sh in a sandbox -------------------------------------------------------


@pytest.fixture
def sandbox(tmp_path):
    """A copy of setup.sh and pyproject.toml, a fake .venv, and stub system tools that
    record every call. FAKE_MISSING names the packages dpkg reports as absent."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "setup.sh", repo / "scripts" / "setup.sh")
    shutil.copy2(ROOT / "pyproject.toml", repo / "pyproject.toml")
    (repo / "ktui" / "engine").mkdir(parents=True)  # the ring reader's ordering helper, built by setup
    shutil.copy2(ROOT / "ktui" / "engine" / "ordering.c", repo / "ktui" / "engine" / "ordering.c")
    calls = tmp_path / "calls"
    calls.write_text("")
    bin_ = tmp_path / "bin"
    for tool in ("apt-get", "sudo"):
        _write_exe(bin_ / tool, f'#!/bin/sh\necho "{tool} $*" >> {calls}\n')
    _write_exe(
        bin_ / "dpkg-query",
        r"""
        #!/bin/bash
        pkg=${@: -1}
        case "$*" in
            *Status-Abbrev*) [[ " $FAKE_MISSING " == *" $pkg "* ]] && exit 1; printf 'ii ' ;;
            *Version*) printf '1.0' ;;
        esac
        """,
    )
    _write_exe(bin_ / "dpkg", "#!/bin/sh\necho ${FAKE_ARCH:-amd64}\n")
    _write_exe(bin_ / "apt-cache", "#!/bin/sh\necho '  Candidate: 1.0'\n")
    # The fake venv: its python records pip calls and imports nothing.
    _write_exe(repo / ".venv" / "bin" / "python", f'#!/bin/sh\necho "venv-python $*" >> {calls}\n')
    _write_exe(repo / ".venv" / "bin" / "ktui", "#!/bin/sh\n")
    env = {
        **os.environ,
        "PATH": f"{bin_}:{os.environ['PATH']}",
        "FAKE_MISSING": "",
    }
    env.pop("KTUI_PYTHON", None)

    def run(*args, missing="", arch="amd64"):
        result = subprocess.run(
            ["bash", str(repo / "scripts" / "setup.sh"), *args],
            env={**env, "FAKE_MISSING": missing, "FAKE_ARCH": arch},
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        return result, calls.read_text().splitlines()

    def mark_installed():
        version = subprocess.run(
            ["/usr/bin/python3", "-c", "import sys; print(sys.version)"], capture_output=True, text=True
        ).stdout.splitlines()[0]
        digest = subprocess.run(["sha256sum", str(repo / "pyproject.toml")], capture_output=True, text=True)
        (repo / ".venv" / ".ktui-setup").write_text(f"{digest.stdout.split()[0]} {version}\n")
        helper = repo / "ktui" / "engine" / "_ordering.so"  # built, newer than its source
        helper.write_bytes(b"")
        os.utime(helper, (time.time() + 5, time.time() + 5))

    run.repo = repo
    run.mark_installed = mark_installed
    run.calls = calls
    return run


def test_setup_does_nothing_when_everything_is_present(sandbox):
    sandbox.mark_installed()
    result, calls = sandbox()
    assert result.returncode == 0, result.stderr
    apt = [c for c in calls if c.startswith(("apt-get", "sudo"))]
    pip = [c for c in calls if "pip install" in c]
    assert apt == [] and pip == [], calls
    check, _ = sandbox("--check")
    assert check.returncode == 0 and "nothing to do" in check.stderr


def test_setup_installs_only_the_missing_packages(sandbox):
    sandbox.mark_installed()
    result, calls = sandbox(missing="python3-bpfcc tmux")
    assert result.returncode == 0, result.stderr
    installs = [c for c in calls if " install " in f" {c} " and "pip" not in c]
    assert len(installs) == 1, calls
    words = installs[0].split()
    assert "python3-bpfcc" in words and "tmux" in words and "gcc" not in words
    assert "-y" in words  # never waits for a person: CI has no stdin


def test_setup_check_reports_and_changes_nothing(sandbox):
    result, calls = sandbox("--check", missing="libbpfcc")
    assert result.returncode == 1
    assert "libbpfcc" in result.stderr and ".venv/ needs" in result.stderr
    assert calls == []


def test_setup_reinstalls_ktui_when_pyproject_changes(sandbox):
    sandbox.mark_installed()
    (sandbox.repo / "pyproject.toml").write_text((sandbox.repo / "pyproject.toml").read_text() + "\n# changed\n")
    result, calls = sandbox()
    assert result.returncode == 0, result.stderr
    assert any("-m pip install" in c and "-e .[test]" in c for c in calls), calls
    # ...and remembers it: the next run does not call pip again.
    sandbox.calls.write_text("")
    result, calls = sandbox()
    assert result.returncode == 0 and not any("pip" in c for c in calls), calls


def test_setup_installs_the_aarch64_cross_tools_for_the_ordering_test(sandbox):
    """tests/test_ordering_arm64.py needs a cross compiler, its C library and qemu-user; on arm64
    the native compiler does it and none of them is asked for."""
    sandbox.mark_installed()
    cross = ["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross", "qemu-user"]
    check, _ = sandbox("--check", missing=" ".join(cross))
    assert all(p in check.stderr for p in cross), check.stderr
    result, calls = sandbox(missing=" ".join(cross))
    assert result.returncode == 0, result.stderr
    install = next(c for c in calls if c.startswith("apt-get") and " install " in c)
    assert all(p in install.split() for p in cross), install
    sandbox.calls.write_text("")
    result, calls = sandbox(missing=" ".join(cross), arch="arm64")
    assert result.returncode == 0, result.stderr
    assert not any(c.startswith("apt-get") for c in calls), calls


def test_setup_kernel_vm_pins_image_and_headers_to_one_version(sandbox):
    sandbox.mark_installed()
    result, calls = sandbox("--check", "--kernel-vm", missing="qemu-system-x86 linux-image-amd64")
    assert result.returncode == 1 and "qemu-system-x86" in result.stderr
    (sandbox.repo / ".venv-vng" / "bin").mkdir(parents=True)
    _write_exe(sandbox.repo / ".venv-vng" / "bin" / "vng", "#!/bin/sh\necho 'virtme-ng 1.42'\n")
    result, calls = sandbox("--kernel-vm", missing="qemu-system-x86 linux-image-amd64")
    assert result.returncode == 0, result.stderr
    install = next(c for c in calls if c.startswith("apt-get") and " install " in c)
    assert "linux-image-amd64=1.0" in install and "linux-headers-amd64=1.0" in install


# --- test-kernel.sh: bad input and the status file --------------------------------


@pytest.fixture
def vm_env(tmp_path):
    """Environment for test-kernel.sh with a stub QEMU, a dummy kernel image and no setup."""
    bin_ = tmp_path / "bin"
    _write_exe(bin_ / "qemu-system-x86_64", "#!/bin/sh\n")
    kernel = tmp_path / "vmlinuz-test"
    kernel.write_text("not a kernel")
    env = {
        **os.environ,
        "PATH": f"{bin_}:{os.environ['PATH']}",
        "KTUI_VM_NO_SETUP": "1",
        "KTUI_VM_KERNEL": str(kernel),
        "TMPDIR": str(tmp_path),
    }
    env.pop("KTUI_REQUIRE_LIVE", None)
    return env, tmp_path


def _stub_vng(tmp_path: Path, body: str) -> Path:
    """A vng that finds the shared run directory in its --rwdir= argument and runs BODY."""
    return _write_exe(
        tmp_path / "vng",
        '#!/bin/bash\nfor a in "$@"; do case "$a" in --rwdir=*) rundir=${a#--rwdir=} ;; esac; done\n' + body + "\n",
    )


def _test_kernel(env, *args, **extra):
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "test-kernel.sh"), *args],
        env={**env, **extra},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


@pytest.mark.skipif(IS_ROOT, reason="checks the message a non-root user gets")
def test_test_kernel_needs_root(vm_env):
    env, _ = vm_env
    result = _test_kernel(env)
    assert result.returncode == 0 and "SKIPPED" in result.stderr and "root" in result.stderr
    assert _test_kernel(env, KTUI_REQUIRE_LIVE="1").returncode == 1


@pytest.mark.skipif(not IS_ROOT, reason="test-kernel.sh stops at its root check before this")
@pytest.mark.parametrize(
    "case, expect",
    [
        ("missing kernel", "no readable kernel image"),
        ("missing vng", "virtme-ng is not installed"),
        ("vm does not start", "the VM did not start"),
    ],
)
def test_test_kernel_cannot_run_skips_locally_and_fails_in_ci(vm_env, case, expect):
    env, tmp_path = vm_env
    if case == "missing kernel":
        env["KTUI_VM_KERNEL"] = str(tmp_path / "nonexistent" / "vmlinuz-x")
    elif case == "missing vng":
        env["KTUI_VNG"] = str(tmp_path / "nonexistent-vng")
    else:
        env["KTUI_VNG"] = str(_stub_vng(tmp_path, "echo 'qemu: could not start' >&2; exit 1"))
    local = _test_kernel(env)
    assert local.returncode == 0, local.stderr
    assert "SKIPPED" in local.stderr and expect in local.stderr
    assert len([line for line in local.stderr.splitlines() if "SKIPPED" in line]) == 1
    ci = _test_kernel(env, KTUI_REQUIRE_LIVE="1")
    assert ci.returncode == 1 and "FAILED" in ci.stderr and expect in ci.stderr


@pytest.mark.skipif(not IS_ROOT, reason="test-kernel.sh stops at its root check before this")
@pytest.mark.parametrize("guest_status", [0, 1, 3])
def test_test_kernel_exits_with_the_guest_status(vm_env, guest_status):
    env, tmp_path = vm_env
    # vng itself exits 0 whatever the guest did: only the status file carries it.
    vng = _stub_vng(tmp_path, f'echo "5.0 1.0" > "$rundir/booted"; echo {guest_status} > "$rundir/status"; exit 0')
    result = _test_kernel(env, KTUI_VNG=str(vng))
    assert result.returncode == guest_status, result.stderr


@pytest.mark.skipif(not IS_ROOT, reason="test-kernel.sh stops at its root check before this")
def test_test_kernel_fails_when_the_guest_stops_early(vm_env):
    env, tmp_path = vm_env
    vng = _stub_vng(tmp_path, 'echo "5.0 1.0" > "$rundir/booted"; exit 0')
    result = _test_kernel(env, KTUI_VNG=str(vng))
    assert result.returncode == 1 and "stopped before its tests finished" in result.stderr


@pytest.mark.skipif(not IS_ROOT, reason="test-kernel.sh stops at its root check before this")
def test_test_kernel_passes_pytest_arguments_to_the_guest(vm_env):
    env, tmp_path = vm_env
    seen = tmp_path / "args"
    vng = _stub_vng(
        tmp_path,
        f'printf "%s\\n" "$@" > {seen}; echo "5.0 1.0" > "$rundir/booted"; echo 0 > "$rundir/status"',
    )
    result = _test_kernel(env, "-k", "ip rcv", KTUI_VNG=str(vng))
    assert result.returncode == 0, result.stderr
    args = seen.read_text().splitlines()
    assert "--disable-kvm" in args
    guest = args[args.index("--exec") + 1]
    assert "tests/kernel/guest.sh" in guest and "-k ip\\ rcv" in guest


def test_junit_totals_sums_both_suites(tmp_path):
    host = tmp_path / "host.xml"
    host.write_text('<testsuites><testsuite tests="10" failures="1" errors="1" skipped="2"/></testsuites>')
    vm = tmp_path / "vm.xml"
    vm.write_text('<testsuite tests="5" failures="0" errors="0" skipped="0"/>')
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "junit_totals.py"), str(host), str(vm), str(tmp_path / "absent.xml")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "tests: 11 passed, 2 failed, 2 skipped"


@functools.cache
def _junit_totals_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("junit_totals", ROOT / "scripts" / "junit_totals.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: f'<testsuite tests="{t}"/>'.encode()))
def test_junit_totals_reads_any_file_without_a_traceback(data):
    fd, name = tempfile.mkstemp(suffix=".xml")
    os.write(fd, data)
    os.close(fd)
    path = Path(name)
    try:
        passed, failed, skipped = _junit_totals_module().totals([str(path)])
    finally:
        path.unlink()
    assert all(isinstance(n, int) for n in (passed, failed, skipped))


# --- test.sh: the VM suite alongside the host suite --------------------------------


@pytest.fixture
def test_sh(tmp_path):
    """A copy of test.sh whose setup, ruff, mypy, host pytest and VM suite are stubs that log
    when they start and end; the VM stub's status, length and output are chosen per run."""
    repo = tmp_path / "repo"
    log = tmp_path / "log"
    shutil.copy2(ROOT / "scripts" / "test.sh", _write_exe(repo / "scripts" / "test.sh", "").parent)
    shutil.copy2(ROOT / "scripts" / "junit_totals.py", repo / "scripts" / "junit_totals.py")
    _write_exe(repo / "scripts" / "setup.sh", "#!/bin/sh\n")
    for tool in ("ruff", "mypy"):
        _write_exe(repo / ".venv" / "bin" / tool, "#!/bin/sh\n")
    # The host suite: its own report, a second of work, a line of output.
    _write_exe(repo / ".venv" / "bin" / "python", f"""
        #!/bin/bash
        echo "host start" >> {log}
        for a in "$@"; do case "$a" in --junitxml=*) x=${{a#--junitxml=}} ;; esac; done
        echo '<testsuite tests="3" failures="0" errors="0" skipped="0"/>' > "$x"
        sleep 1
        echo "HOST OUTPUT"
        echo "host end" >> {log}
        """)
    _write_exe(repo / "scripts" / "test-kernel.sh", f"""
        #!/bin/bash
        echo "vm start $$ $(ps -o sid= -p $$) $(ps -o ni= -p $$)" >> {log}
        echo '<testsuite tests="2" failures="1" errors="0" skipped="0"/>' > "$KTUI_VM_JUNIT"
        sleep "${{VM_SLEEP:-0.2}}"
        echo "VM OUTPUT"
        echo "vm end" >> {log}
        exit "${{VM_STATUS:-0}}"
        """)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "KTUI_REQUIRE_LIVE", "KTUI_TEST_KERNEL")}

    def run(**extra):
        log.write_text("")
        result = subprocess.run(["bash", str(repo / "scripts" / "test.sh")], env={**env, "KTUI_NO_SUDO": "1",
                                **extra}, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
        return result, log.read_text().splitlines()
    return run


def test_the_vm_suite_runs_alongside_niced_and_reports_after_the_host_suite(test_sh):
    result, log = test_sh(VM_STATUS="3")
    assert result.returncode != 0  # the VM suite's failure fails the run
    assert log.index("vm end") < log.index("host end")  # it ran while the host suite did
    _, sid, nice = next(line for line in log if line.startswith("vm start")).split()[2:]
    assert int(sid) != os.getsid(0) and int(nice) >= 10  # a session of its own (test.sh's is ours), niced
    out = result.stdout
    assert "VM OUTPUT" in out and out.index("HOST OUTPUT") < out.index("VM OUTPUT")  # printed after
    assert "kprobe VM suite status 3" in result.stderr and "(alongside the host suite" in result.stderr
    assert "tests: 4 passed, 1 failed, 0 skipped" in out  # both suites' reports are counted


def test_serial_runs_the_vm_suite_after_the_host_suite(test_sh):
    result, log = test_sh(KTUI_TEST_SERIAL="1")
    assert result.returncode == 0, result.stderr
    assert [line.split()[0:2] for line in log] == [["host", "start"], ["host", "end"], ["vm", "start"], ["vm", "end"]]
    assert "kprobe VM suite status 0" in result.stderr and "alongside" not in result.stderr


def test_no_vm_suite_when_left_out(test_sh):
    result, log = test_sh(KTUI_TEST_KERNEL="0")
    assert result.returncode == 0 and log == ["host start", "host end"]
    assert "left out" in result.stderr


def test_an_interrupted_run_takes_its_vm_with_it(test_sh, tmp_path):
    log = tmp_path / "log"
    log.write_text("")
    proc = subprocess.Popen(["bash", str(tmp_path / "repo" / "scripts" / "test.sh")],
                            env={**os.environ, "KTUI_NO_SUDO": "1", "VM_SLEEP": "60"}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while "vm start" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        vm_pid = int(next(li for li in log.read_text().splitlines() if li.startswith("vm start")).split()[2])
        proc.terminate()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{vm_pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{vm_pid}").exists()
        assert "vm end" not in log.read_text()
    finally:
        proc.kill()
