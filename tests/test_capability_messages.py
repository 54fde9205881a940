"""Bad input (issue 2): not root, no BCC, no headers, no BTF, a kernel without kprobes.
Each gets one clear sentence naming what is missing and what still works, never a traceback;
and the engine's attach failures are explained from the kernel's evidence, not BCC's wording."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ktui.doctor import Check, Report, diagnose, explain_attach_failure, summary_warnings
from ktui.doctor import explain, mechanisms, toolchain
from ktui.doctor.facts import NEEDS_PRIVILEGE, Privileges

ROOT = Path(__file__).resolve().parents[1]
PRIVILEGED_MECHANISMS = ("bpf_syscall", "fentry", "tracepoint", "raw_tracepoint", "uprobe", "perf_event", "ringbuf", "stack_map")
KPROBE_SENTENCE = (
    "kprobes are not available: this kernel is built without CONFIG_KPROBES (no kprobe_events in tracefs, "
    "no kprobe PMU); tracepoints, uprobes and sampling still work"
)


def _one_sentence(text: str) -> None:
    assert text and "\n" not in text and "Traceback" not in text, text


def _kernel_has_no_kprobes() -> bool:
    return not Path("/sys/bus/event_source/devices/kprobe").exists()


@pytest.fixture(scope="module")
def shared_tmp():
    """A directory an unprivileged user can write (pytest's tmp_path is root-only); one per
    module, so the merged headers tree is built in it once."""
    path = tempfile.mkdtemp(prefix="ktui-test-")
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _run(args: list[str], env: dict[str, str] | None = None, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    """`ktui ARGS` as a user would start it: without the BCC_KERNEL_SOURCE this test process set."""
    base = {k: v for k, v in os.environ.items() if k != "BCC_KERNEL_SOURCE"}
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "ktui", *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env={**base, **(env or {})},
    )


# --- not root -------------------------------------------------------------------------------

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
NO_CAPS = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]  # uid 0, empty CapEff


def _unprivileged(kind: str, cache: str) -> list[str]:
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to test the unprivileged case")
    if kind == "nobody":
        probe = subprocess.run([*NOBODY, sys.executable, "-c", "import ktui.doctor"], capture_output=True, cwd=cache,
                               env={**os.environ, "HOME": cache})
        if probe.returncode != 0:
            # The tree is not traversable by nobody here: drop every capability instead.
            return NO_CAPS
        return NOBODY
    return NO_CAPS


@pytest.mark.live
@pytest.mark.parametrize("who", ["nobody", "no_caps"])
def test_unprivileged_doctor_says_needs_root_and_exits_cleanly(who, shared_tmp):
    prefix = _unprivileged(who, shared_tmp)
    # uid 0 without capabilities still owns root's cache; nobody needs one it can write.
    env = {} if prefix is NO_CAPS else {"HOME": shared_tmp, "KTUI_CACHE_DIR": shared_tmp}
    out = _run(["doctor", "--json"], env=env, prefix=prefix)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    data = json.loads(out.stdout)
    assert data["capabilities"]["ok"] is False
    assert data["root"]["ok"] is (prefix is NO_CAPS)
    for name in PRIVILEGED_MECHANISMS:
        assert data[name]["ok"] is False, name
        assert data[name]["why"].startswith(NEEDS_PRIVILEGE), (name, data[name]["why"])
    if _kernel_has_no_kprobes():
        # A fact about the kernel, true whoever asks.
        assert data["kprobe"]["why"] == KPROBE_SENTENCE
    assert data["btf"]["ok"] is True
    for check in data.values():
        _one_sentence(check["why"])
    human = _run(["doctor", "--no-compile"], env=env, prefix=prefix)
    assert human.returncode == 0 and human.stderr == ""
    assert "live tracing unavailable, replay works" in human.stdout


@pytest.mark.live
def test_unprivileged_attach_failure_is_explained_as_privilege(shared_tmp):
    prefix = _unprivileged("nobody", shared_tmp)
    code = (
        "from ktui.doctor import explain_attach_failure as e\n"
        "print(e('tracepoint', 'syscalls:sys_enter_getppid', PermissionError(1, 'Operation not permitted')))\n"
    )
    out = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "HOME": shared_tmp, "KTUI_CACHE_DIR": shared_tmp}, timeout=300)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    _one_sentence(line)
    assert line == f"cannot attach tracepoint syscalls:sys_enter_getppid: {NEEDS_PRIVILEGE}; browsing, compiling and replay still work"


# --- no BCC ---------------------------------------------------------------------------------


@pytest.mark.live
def test_no_bcc_is_one_sentence_and_the_kernel_checks_still_run(tmp_path):
    out = _run(["doctor", "--json"], env={"KTUI_BCC_PATH": str(tmp_path)})
    assert out.returncode == 0 and out.stderr == ""
    data = json.loads(out.stdout)
    bcc = data["bcc"]
    assert bcc["ok"] is False
    _one_sentence(bcc["why"])
    assert bcc["why"].startswith("BCC is not installed")
    assert "still work" in bcc["why"]
    # Doctor asks the kernel directly: no BCC does not change what the kernel can do.
    assert data["tracepoint"]["ok"] is True and data["uprobe"]["ok"] is True
    human = _run(["doctor"], env={"KTUI_BCC_PATH": str(tmp_path)})
    assert "BCC not installed: live tracing unavailable" in human.stdout


# --- no headers -----------------------------------------------------------------------------


@pytest.mark.live
def test_broken_headers_turn_the_compile_failure_into_a_sentence(tmp_path):
    out = _run(["doctor", "--json"], env={"BCC_KERNEL_SOURCE": str(tmp_path)})
    assert out.returncode == 0
    assert out.stderr == ""  # clang's and modprobe's noise is captured as evidence, not printed
    head = json.loads(out.stdout)["headers"]
    assert head["ok"] is False
    _one_sentence(head["why"])
    assert head["why"].startswith(f"BCC could not compile a test program with BCC_KERNEL_SOURCE={tmp_path}")
    assert "first error:" in head["why"] and "browsing and replay still work" in head["why"]


def test_no_headers_at_all_is_one_sentence(monkeypatch):
    import ktui.headers

    monkeypatch.setattr(ktui.headers, "find_headers", lambda: None)
    _, head = toolchain.bcc_and_headers(Privileges(0, 0), compile_check=True)
    assert head.ok is False
    _one_sentence(head.why)
    assert head.why.startswith(f"no kernel headers for {os.uname().release}")
    assert head.why.endswith("BCC cannot compile probes; browsing and replay still work")
    assert summary_warnings(Report({"headers": head}))[0] == "no usable kernel headers: probes cannot compile"


# --- no BTF ---------------------------------------------------------------------------------


@pytest.mark.live
def test_no_btf_is_one_sentence(tmp_path):
    report = diagnose(compile_check=False, btf_path=str(tmp_path / "vmlinux"))
    btf, fentry = report.checks["btf"], report.checks["fentry"]
    assert btf.ok is False and fentry.ok is False
    _one_sentence(btf.why)
    assert btf.why.startswith("no kernel BTF")
    assert btf.why.endswith("tracepoints, kprobes and uprobes still work")
    assert fentry.why.startswith("fentry/fexit need kernel BTF")
    assert report.checks["tracepoint"].ok is True
    assert "no kernel BTF" in summary_warnings(report)


def test_corrupt_btf_is_one_sentence(tmp_path):
    bad = tmp_path / "vmlinux"
    bad.write_bytes(b"\x7fELF" + b"\0" * 100)
    report = diagnose(compile_check=False, btf_path=str(bad))
    assert report.checks["btf"].ok is False
    _one_sentence(report.checks["btf"].why)
    assert "is not BTF (magic" in report.checks["btf"].why
    assert report.checks["fentry"].ok is False


# --- a kernel without kprobes ---------------------------------------------------------------


@pytest.mark.live
def test_kprobe_attach_failure_names_the_kernel_config_not_bcc():
    if not _kernel_has_no_kprobes():
        pytest.skip("this kernel has kprobes")
    explain.clear_cache()
    assert explain_attach_failure("kprobe", "vfs_read") == KPROBE_SENTENCE
    assert explain_attach_failure("kretprobe", "vfs_read").startswith("kretprobes are not available: this kernel is built without CONFIG_KPROBES")
    # Whatever BCC said, the sentence is the kernel's truth.
    assert explain_attach_failure("kprobe", "vfs_read", Exception("Failed to attach BPF program b'x' to kprobe b'vfs_read', it's not traceable")) == KPROBE_SENTENCE


def test_kprobe_without_readable_config_still_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(mechanisms, "PMU_DIR", str(tmp_path / "devices"))
    (tmp_path / "tracing").mkdir()
    ctx = mechanisms.Context(Privileges(0, 1 << 21), None, "kernel config not readable: /proc/config.gz (No such file or directory)", str(tmp_path / "tracing"))
    check = mechanisms.kprobe(ctx)
    assert check.ok is False
    assert check.why == "kprobes are not available: no kprobe_events in tracefs and no kprobe PMU; tracepoints, uprobes and sampling still work"
    (tmp_path / "tracing" / "kprobe_events").write_text("")
    assert mechanisms.kprobe(ctx).ok is True  # an old kernel: the legacy interface, no PMU
    ctx = mechanisms.Context(Privileges(0, 1 << 21), {"CONFIG_KPROBES": "n"}, "/proc/config.gz", str(tmp_path / "tracing"))
    assert "built without CONFIG_KPROBES" in mechanisms.kprobe(ctx).why


# --- the engine's attach failures -----------------------------------------------------------


@pytest.mark.live
@pytest.mark.parametrize(
    ("kind", "target", "expected"),
    [
        ("tracepoint", "syscalls:sys_enter_no_such", "no tracepoint syscalls:sys_enter_no_such: category syscalls has no event sys_enter_no_such"),
        ("tracepoint", "nosuchcategory:x", "no tracepoint category nosuchcategory (not in /sys/kernel/tracing/events)"),
        ("tracepoint", "getppid", "'getppid' is not a tracepoint name: write category:event, for example syscalls:sys_enter_openat"),
        ("rawtracepoint", "no_such_tp", "no raw tracepoint no_such_tp: no tracepoint of that name in /sys/kernel/tracing/events"),
        ("uprobe", "/no/such/file:main", "no file or library /no/such/file to place a uprobe in"),
        ("uretprobe", "/bin/true:no_such_function_xyz", "/bin/true has no function no_such_function_xyz in its symbol tables (a stripped binary needs its debuginfo)"),
        ("uprobe", "c:getpid", "uprobe c:getpid should attach here; doctor found nothing in the way (see `ktui doctor`)"),
        ("profile", "hz:99", "profile hz:99 should attach here; doctor found nothing in the way (see `ktui doctor`)"),
        ("nonsense", "x", None),
    ],
)
def test_attach_failures_are_explained_precisely(kind, target, expected):
    explain.clear_cache()
    text = explain_attach_failure(kind, target)
    _one_sentence(text)
    if expected is None:
        assert text.startswith("unknown probe kind 'nonsense'")
    else:
        assert text == expected


@pytest.mark.live
def test_attach_failure_uses_the_error_when_nothing_else_explains_it():
    explain.clear_cache()
    text = explain_attach_failure("tracepoint", "syscalls:sys_enter_getppid", OSError(errno.EBUSY, "busy"))
    assert text == "attaching tracepoint syscalls:sys_enter_getppid failed: EBUSY: Device or resource busy"


@pytest.mark.live
def test_fentry_failure_is_the_kernels_refusal():
    explain.clear_cache()
    fentry = diagnose(compile_check=False).checks["fentry"]
    if fentry.ok is False:
        assert explain_attach_failure("fexit", "vfs_read") == fentry.why


@pytest.mark.live
def test_a_misspelled_kernel_function_gets_a_suggestion():
    explain.clear_cache()
    text = explain._kernel_function("kprobe", "vfs_reed")
    assert text == "no kernel function named vfs_reed (not in /proc/kallsyms) (did you mean vfs_read?)"


# --- the status bar -------------------------------------------------------------------------


@pytest.mark.live
def test_summary_warnings_on_this_machine_are_short_and_true():
    report = diagnose(compile_check=False)
    warnings = summary_warnings(report)
    assert all(len(w) <= 60 and "\n" not in w for w in warnings)
    if _kernel_has_no_kprobes():
        assert "no kprobes (kernel without CONFIG_KPROBES)" in warnings
    if report.checks["fentry"].ok is False and "EPERM" in report.checks["fentry"].why:
        assert "fentry refused by the kernel (EPERM)" in warnings
    assert not any(w.startswith("not root") for w in warnings)


def test_summary_warnings_put_the_biggest_limit_first():
    report = Report({
        "root": Check(False, "running as uid 1000"),
        "capabilities": Check(False, "lacks"),
        "tracepoint": Check(False, NEEDS_PRIVILEGE),
        "kprobe": Check(False, NEEDS_PRIVILEGE),
        "bcc": Check(False, "BCC is not installed"),
    })
    # One line for privileges, not one per mechanism that needs them.
    assert summary_warnings(report) == ["not root: live tracing unavailable, replay works", "BCC not installed: live tracing unavailable"]
    assert summary_warnings(Report({"lockdown": Check(False, "x", value="confidentiality")})) == ["lockdown confidentiality: kernel reads blocked"]
    assert summary_warnings(Report({"tracepoint": Check(True, "ok")})) == []


@pytest.mark.live
def test_kprobe_explanations_where_kprobes_exist():
    """The counterpart of the no-kprobes sentence: runs on a kernel with kprobes (the kprobe VM)."""
    if _kernel_has_no_kprobes():
        pytest.skip("this kernel has no kprobes (its sentence is tested above)")
    explain.clear_cache()
    assert explain_attach_failure("kprobe", "vfs_read") == "kprobe vfs_read should attach here; doctor found nothing in the way (see `ktui doctor`)"
    functions = explain._kallsyms()
    blacklisted = sorted(n for n in explain._kprobe_blacklist() if n in functions)
    if blacklisted:
        name = blacklisted[0]
        assert explain_attach_failure("kprobe", name) == (
            f"{name} is on the kernel's kprobe blacklist (kprobes there could crash the kernel); choose a caller or a tracepoint")
    traceable = explain._readable_lines("/sys/kernel/tracing/available_filter_functions")
    if traceable is not None:
        name = sorted(n for n in functions - traceable - explain._kprobe_blacklist() if "." not in n)[0]
        assert explain_attach_failure("kretprobe", name).startswith(f"{name} is not traceable: it is absent from available_filter_functions")


@pytest.mark.live
def test_an_unwritable_cache_is_one_sentence_naming_the_fix():
    out = _run(["doctor", "--json"], env={"KTUI_CACHE_DIR": "/proc/ktui-cannot-write-here"})
    assert out.returncode == 0 and out.stderr == ""
    head = json.loads(out.stdout)["headers"]
    if head["value"] != "generic":
        pytest.skip(f"this machine uses {head['value']} headers, not the generic fallback that needs the cache")
    assert head["ok"] is False
    _one_sentence(head["why"])
    assert head["why"].startswith("could not assemble generic kernel headers in ktui's cache")
    assert head["why"].endswith("(KTUI_CACHE_DIR chooses a writable place): until then BCC cannot compile probes; browsing and replay still work")
