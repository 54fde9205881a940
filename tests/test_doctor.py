"""`ktui doctor` on this machine's real kernel, checked against independent evidence
(the kernel's own files, bpftrace --info, bpftool), plus its stable JSON schema and
its small readers under hypothesis."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ktui.doctor import MECHANISMS, Check, Report, diagnose, render_table
from ktui.doctor import btfinfo, facts
from ktui.errors import FileFormatError

ROOT = Path(__file__).resolve().parents[1]
KTUI = [sys.executable, "-m", "ktui"]
REQUIRED = ("kprobe", "kretprobe", "fentry", "tracepoint", "raw_tracepoint", "uprobe", "perf_event", "ringbuf", "btf")
ALSO = (
    "stack_map", "root", "capabilities", "bpf_syscall", "lockdown", "kptr_restrict", "perf_event_paranoid",
    "headers", "bcc", "tracefs", "available_filter_functions", "kprobe_blacklist",
)


@pytest.fixture(scope="module")
def report() -> Report:
    return diagnose()


def _bpftrace_info() -> dict[str, str]:
    exe = shutil.which("bpftrace")
    if exe is None:
        return {}
    out = subprocess.run([exe, "--info"], capture_output=True, text=True, timeout=30)
    info = {}
    for line in (out.stdout + out.stderr).splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and value.strip() in ("yes", "no"):
            info[key.strip()] = value.strip()
    return info


def _kernel_config() -> dict[str, str]:
    try:
        text = gzip.decompress(Path("/proc/config.gz").read_bytes()).decode()
    except OSError:
        try:
            text = Path(f"/boot/config-{os.uname().release}").read_text()
        except OSError:
            return {}
    return facts.parse_kernel_config(text)


# --- live: the real kernel ------------------------------------------------------------------


@pytest.mark.live
def test_kprobes_follow_the_kernels_own_evidence(report):
    has_pmu = Path("/sys/bus/event_source/devices/kprobe/type").exists()
    assert report.checks["kprobe"].ok is has_pmu
    assert report.checks["kretprobe"].ok is has_pmu
    if not has_pmu and _kernel_config().get("CONFIG_KPROBES") == "n":
        for name in ("kprobe", "kretprobe"):
            why = report.checks[name].why
            assert "built without CONFIG_KPROBES" in why
            assert "no kprobe_events in tracefs, no kprobe PMU" in why
            assert "tracepoints, uprobes and sampling still work" in why
            assert "not traceable" not in why  # BCC's misleading wording
            assert any("CONFIG_KPROBES=n" in e for e in report.checks[name].evidence)


@pytest.mark.live
def test_fentry_matches_bpftrace_kfunc(report):
    info = _bpftrace_info()
    fentry = report.checks["fentry"]
    if "kfunc" in info:
        assert fentry.ok is (info["kfunc"] == "yes")
    if fentry.ok is False and Path("/sys/kernel/btf/vmlinux").exists():
        # Refused by kernel policy while we hold the privileges: say so with the errno.
        assert "EPERM" in fentry.why or any("EPERM" in e for e in fentry.evidence)
        assert "needs root" not in fentry.why


@pytest.mark.live
def test_mechanisms_that_work_here_say_yes(report):
    # KERNEL.md: tracepoints, raw tracepoints, uprobes, sampling, ringbuf, stack maps, BTF work here.
    for name in ("bpf_syscall", "tracepoint", "raw_tracepoint", "uprobe", "perf_event", "ringbuf", "stack_map", "btf", "root", "capabilities", "tracefs"):
        assert report.checks[name].ok is True, (name, report.checks[name])
    assert "syscalls:sys_enter_getppid" in report.checks["tracepoint"].why


@pytest.mark.live
def test_agrees_with_bpftrace_where_bpftrace_really_tries(report):
    info = _bpftrace_info()
    if not info:
        pytest.skip("bpftrace is not installed")
    for ours, theirs in (("tracepoint", "tracepoint"), ("perf_event", "perf_event"), ("btf", "btf"), ("stack_map", "stack_trace")):
        if theirs in info:
            assert report.checks[ours].ok is (info[theirs] == "yes"), ours
    # bpftrace's "kprobe: yes" only means a kprobe *program* loads; doctor asks whether one attaches.


@pytest.mark.live
def test_btf_function_id_matches_bpftool():
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.skip("bpftool is not installed")
    out = subprocess.run([bpftool, "btf", "dump", "file", btfinfo.VMLINUX_BTF], capture_output=True, text=True, timeout=60).stdout
    expected = {}
    for line in out.splitlines():
        for name in ("vfs_read", "ksys_read"):
            if line.endswith("linkage=static") or line.endswith("linkage=global"):
                if f"FUNC '{name}' " in line:
                    expected.setdefault(name, int(line[1 : line.index("]")]))
    assert expected
    assert btfinfo.func_ids(Path(btfinfo.VMLINUX_BTF).read_bytes(), list(expected)) == expected


@pytest.mark.live
def test_lockdown_matches_securityfs_and_leaves_no_mount(report):
    before = Path("/proc/self/mounts").read_text()
    mode, evidence = facts.lockdown_mode()
    assert Path("/proc/self/mounts").read_text().count("securityfs") == before.count("securityfs")
    assert mode in ("none", "integrity", "confidentiality")
    assert report.checks["lockdown"].value == mode
    forced = [k for k, v in _kernel_config().items() if k.startswith("CONFIG_LOCK_DOWN_KERNEL_FORCE_") and v == "y"]
    if forced == ["CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY"]:
        assert mode in ("integrity", "confidentiality")


@pytest.mark.live
def test_sysctls_and_capabilities_are_read_not_guessed(report):
    assert report.checks["kptr_restrict"].value == Path("/proc/sys/kernel/kptr_restrict").read_text().strip()
    assert report.checks["perf_event_paranoid"].value == Path("/proc/sys/kernel/perf_event_paranoid").read_text().strip()
    cap_eff = int(next(ln.split()[1] for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("CapEff")), 16)
    expected = [n for n, bit in (("CAP_BPF", 39), ("CAP_PERFMON", 38), ("CAP_SYS_ADMIN", 21)) if cap_eff >> bit & 1]
    assert report.checks["capabilities"].value == ",".join(expected)


@pytest.mark.live
def test_headers_say_whether_they_match_the_kernel(report):
    from ktui.headers import find_headers

    found = find_headers()
    head = report.checks["headers"]
    assert head.ok is True
    if found is not None and not found.matches_kernel:
        assert "struct layouts" in head.why and "unreliable" in head.why
        assert os.uname().release in head.why


@pytest.mark.live
def test_available_filter_functions_reports_the_real_open(report):
    path = "/sys/kernel/tracing/available_filter_functions"
    try:
        with open(path) as f:
            f.readline()
        readable = True
    except OSError:
        readable = False
    assert report.checks["available_filter_functions"].ok is readable


def _ktui_programs() -> list[dict]:
    bpftool = shutil.which("bpftool")
    out = subprocess.run([bpftool, "prog", "list", "-j"], capture_output=True, text=True, timeout=30).stdout
    return [p for p in json.loads(out or "[]") if str(p.get("name", "")).startswith("ktui_doctor")]


@pytest.mark.live
def test_nothing_left_in_the_kernel_after_doctor(report):
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed")
    uprobe_events = Path("/sys/kernel/tracing/uprobe_events").read_text()
    subprocess.run([*KTUI, "doctor"], check=True, capture_output=True, timeout=300, cwd=ROOT)
    assert _ktui_programs() == []
    assert Path("/sys/kernel/tracing/uprobe_events").read_text() == uprobe_events


@pytest.mark.live
def test_nothing_left_after_sigkill_while_attached():
    """doctor's attachments are file descriptors: killing the process mid-check releases them."""
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed")
    code = (
        "import os, signal, sys\n"
        "from ktui.doctor import bpfsys\n"
        "prog = bpfsys.prog_load(bpfsys.PROG_RAW_TRACEPOINT, name=b'ktui_doctor_kil')\n"
        "link = bpfsys.raw_tracepoint_open(prog, b'sys_enter')\n"
        "print('attached', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert child.stdout.readline().strip() == "attached"
        assert [p["name"] for p in _ktui_programs()] == ["ktui_doctor_kil"]
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    deadline = time.monotonic() + 10
    while _ktui_programs() and time.monotonic() < deadline:  # the kernel frees programs after an RCU grace period
        time.sleep(0.05)
    assert _ktui_programs() == []


@pytest.mark.live
def test_json_schema_is_stable():
    out = subprocess.run([*KTUI, "doctor", "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    data = json.loads(out.stdout)
    for key in REQUIRED + ALSO:
        assert key in data, key
    for key, check in data.items():
        assert set(check) == {"ok", "why", "evidence", "value"}, key
        assert check["ok"] in (True, False, None), key
        assert isinstance(check["why"], str) and check["why"], key
        assert isinstance(check["evidence"], list) and all(isinstance(e, str) for e in check["evidence"]), key
        assert check["value"] is None or isinstance(check["value"], str), key
    for key in REQUIRED:
        assert isinstance(data[key]["ok"], bool), key  # known for certain here, as root


@pytest.mark.live
def test_human_table_is_one_line_per_check_with_yes_no():
    out = subprocess.run([*KTUI, "doctor"], capture_output=True, text=True, timeout=300, cwd=ROOT, env={**os.environ, "COLUMNS": "120"})
    assert out.returncode == 0 and out.stderr == ""
    rows = {line.split()[0]: line.split()[1] for line in out.stdout.splitlines() if line[:1].isalpha() and len(line.split()) > 1}
    for key in REQUIRED:
        assert rows[key] in ("yes", "no", "?"), key
    assert "In short:" in out.stdout or all(rows[k] == "yes" for k in REQUIRED)


# --- readers under hypothesis ---------------------------------------------------------------


@given(st.binary(max_size=512))
@settings(max_examples=300, deadline=None)
def test_btf_reader_never_crashes(data):
    try:
        btfinfo.check_header(data)
        btfinfo.func_ids(data, ["vfs_read", "x"])
    except FileFormatError as err:
        assert str(err)


def _btf(types: bytes, strings: bytes) -> bytes:
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings)) + types + strings


@given(st.binary(max_size=400), st.binary(max_size=64))
@settings(max_examples=300, deadline=None)
def test_btf_reader_never_crashes_with_a_valid_header(types, strings):
    try:
        btfinfo.func_ids(_btf(types, b"\0vfs_read\0" + strings), ["vfs_read"])
    except FileFormatError as err:
        assert str(err)


def test_btf_reader_finds_a_func_after_other_kinds():
    strings = b"\0int\0vfs_read\0"
    types = (
        struct.pack("<III", 1, 1 << 24, 4) + struct.pack("<I", 32)  # [1] INT 'int' + 4 extra bytes
        + struct.pack("<III", 0, (13 << 24) | 1, 1) + struct.pack("<II", 0, 1)  # [2] FUNC_PROTO, one param
        + struct.pack("<III", 5, 12 << 24, 2)  # [3] FUNC 'vfs_read'
    )
    assert btfinfo.func_ids(_btf(types, strings), ["vfs_read", "absent"]) == {"vfs_read": 3}
    assert btfinfo.check_header(_btf(types, strings)) == 1


def test_btf_reader_rejects_bad_files_with_a_sentence():
    with pytest.raises(FileFormatError, match="is not BTF"):
        btfinfo.check_header(b"\x7fELF" + b"\0" * 40)
    with pytest.raises(FileFormatError, match="truncated"):
        btfinfo.check_header(struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 100, 100, 10))


@given(st.text(max_size=300))
@settings(max_examples=200, deadline=None)
def test_text_readers_never_crash(text):
    facts.parse_cap_eff(text)
    facts.parse_kernel_config(text)
    facts.parse_lockdown(text)


def test_text_readers_read_the_real_formats():
    assert facts.parse_cap_eff("Name:\tx\nCapEff:\t000001fffeffffff\n") == 0x1FFFEFFFFFF
    assert facts.parse_cap_eff("CapEff:\tzz\n") is None
    assert facts.parse_kernel_config("# CONFIG_KPROBES is not set\nCONFIG_UPROBES=y\nCONFIG_X=\"a b\"\n") == {
        "CONFIG_KPROBES": "n", "CONFIG_UPROBES": "y", "CONFIG_X": "a b"}
    assert facts.parse_lockdown("none [integrity] confidentiality") == "integrity"
    assert facts.parse_lockdown("[none] integrity confidentiality") == "none"
    assert facts.parse_lockdown("garbage") is None


def test_privileges_need_bpf_and_perfmon_or_sys_admin():
    assert facts.Privileges(1000, (1 << 39) | (1 << 38)).can_bpf
    assert facts.Privileges(1000, 1 << 21).can_bpf
    assert not facts.Privileges(1000, 1 << 39).can_bpf
    assert not facts.Privileges(0, None).can_bpf


def test_render_table_wraps_and_marks_unknown():
    report = Report({"kprobe": Check(False, "x " * 80, ["e"]), "lockdown": Check(None, "unknown")})
    text = render_table(report, width=60)
    assert all(len(line) <= 60 for line in text.splitlines())
    assert any(line.startswith("lockdown") and " ? " in line for line in text.splitlines())
    assert set(MECHANISMS) <= set(REQUIRED) | {"raw_tracepoint"}


@given(st.binary(max_size=2048), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=8), st.booleans())
@settings(max_examples=200, deadline=None)
def test_elf_symbol_reader_never_crashes(data, pos, patch, mutate_real):
    """Any file, or a real binary with bytes overwritten anywhere, gives an offset or None."""
    from ktui.doctor.mechanisms import elf_symbol_offset

    real = Path("/bin/true").read_bytes()
    blob = real[:pos] + patch + real[pos + len(patch):] if mutate_real else data
    with tempfile.NamedTemporaryFile() as f:
        f.write(blob)
        f.flush()
        result = elf_symbol_offset(f.name, "main")
    assert result is None or isinstance(result, int)


def test_elf_symbol_offset_agrees_with_where_libc_is_mapped():
    """Two independent roads to getpid's file offset: the ELF symbol table (pyelftools)
    and dlsym's run-time address mapped back through /proc/self/maps."""
    from elftools.elf.elffile import ELFFile

    from ktui.doctor.mechanisms import _libc_getpid, elf_symbol_offset

    found = _libc_getpid()
    assert found is not None
    libc, offset = found
    assert elf_symbol_offset(libc, "getpid") == offset
    with open(libc, "rb") as f:
        text = ELFFile(f).get_section_by_name(".text")
        assert text["sh_offset"] <= offset < text["sh_offset"] + text["sh_size"]


def test_a_failing_check_becomes_unknown_not_a_traceback(monkeypatch):
    from ktui.doctor import mechanisms

    def boom(ctx):
        raise RuntimeError("odd kernel")

    monkeypatch.setattr(mechanisms, "raw_tracepoint", boom)
    report = diagnose(compile_check=False)
    check = report.checks["raw_tracepoint"]
    assert check.ok is None
    assert check.why == "doctor could not decide raw_tracepoint: RuntimeError: odd kernel"
    assert "tracepoint" in report.checks
