"""One probe, one truth (issue 12): one resolution of names and types, strings fetched as
strings, names checked before anything compiles, faults shown as faults, zero-script
capture, fallbacks that cover what the probe meant, and `ktui record --filter/--session`.
Live tests run on this machine's real kernel (tracepoints; kprobes fall back to them)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest

from ktui.cli import main
from ktui.compiler import compile_session
from ktui.compiler.fallback import KernelFacts
from ktui.errors import UsageError
from ktui.events import FieldLayout, ProbeLayout
from ktui.probes.exists import check_exists, did_you_mean
from ktui.probes.model import Arg, Fetch, Probe, ProbeKind
from ktui.probes.resolve import memory_of, names_from, value_type

HERE = KernelFacts(kprobes=False, fentry=False, fentry_reason="EPERM")
KPROBES = KernelFacts(kprobes=True, fentry=False, fentry_reason="EPERM")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="reads tracefs and loads BPF programs")


# --- the resolution itself --------------------------------------------------------

def test_char_pointers_are_strings_and_user_memory_follows_the_type():
    assert value_type("const char *", "user").kind == "ustring"
    assert value_type("char *", "kernel").kind == "string"
    assert value_type("char[16]", "user").kind == "string"  # an array lives in the record itself
    assert value_type("char **", "user").kind == "x"
    assert value_type("struct file *", "kernel").kind == "x"
    assert memory_of("tracepoint", "syscalls:sys_enter_openat", "const char *") == "user"
    assert memory_of("tracepoint", "sched:sched_process_exec", "const char *") == "kernel"
    assert memory_of("function", "do_sys_openat2", "const char *") == "user"  # a system call's implementation
    assert memory_of("function", "vfs_read", "char *") == "either"
    assert memory_of("function", "vfs_read", "char __user *") == "user"
    assert memory_of("user", "main", "char *") == "user"


def test_return_value_only_where_there_is_a_return():
    exit_tp = names_from("tracepoint", "syscalls:sys_exit_openat", [("__syscall_nr", "int"), ("ret", "long")],
                         None, returns=False)
    names = exit_tp.filter_names()
    assert names["ret"] == "int" and "retval" not in names and "__syscall_nr" not in names
    entry = names_from("function", "do_sys_openat2", [("dfd", "int"), ("filename", "const char *")], "int",
                       returns=False)
    assert "retval" not in entry.filter_names() and entry.filter_names()["filename"] == "string"
    ret = names_from("function", "do_sys_openat2", [("dfd", "int")], "int", returns=True)
    assert ret.filter_names()["retval"] == "int"
    void = names_from("function", "schedule", [], "void", returns=True)
    assert void.ret is None  # no "void retval"


def test_a_filter_on_a_string_argument_compiles_as_a_string_compare():
    probe = Probe(ProbeKind.KPROBE, "do_sys_openat2", filter='filename == "/etc/passwd"')
    cp = compile_session([probe], facts=KPROBES).probes[0]
    assert cp.error is None
    assert cp.fetch_reads["filename"] == "bpf_probe_read_user_str"
    assert [(f.name, f.display) for f in cp.layout.fields][:2] == [("dfd", "s"), ("filename", "string")]


def test_a_ticked_tracepoint_ret_on_sys_exit_is_a_field():
    probe = Probe(ProbeKind.TRACEPOINT, "syscalls:sys_exit_openat", fetches=[Fetch("ret", Arg(name="ret"))],
                  filter="ret < 0")
    cp = compile_session([probe], facts=HERE).probes[0]
    assert cp.error is None and [f.name for f in cp.layout.fields] == ["ret"]
    retval = Probe(ProbeKind.TRACEPOINT, "syscalls:sys_exit_openat", filter="retval < 0")
    assert "unknown name 'retval'" in compile_session([retval], facts=HERE).probes[0].error


def test_zero_script_capture_records_every_field_by_type():
    cp = compile_session([Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_openat")], facts=HERE).probes[0]
    assert [(f.name, f.dtype, f.display) for f in cp.layout.fields] == [
        ("dfd", "<i4", "s"), ("filename", "S64", "string"), ("flags_value", "<i4", "s"), ("mode", "<u2", "u")]
    ret = compile_session([Probe(ProbeKind.KRETPROBE, "do_sys_openat2")], facts=KPROBES).probes[0]
    assert [f.name for f in ret.layout.fields] == ["retval"]


def test_kretprobe_fallback_covers_every_call_reaching_the_function():
    cp = compile_session([Probe(ProbeKind.KRETPROBE, "do_sys_openat2", filter="retval < 0")],
                         facts=HERE).probes[0]
    assert cp.error is None
    assert sorted(p.event for p in cp.attach_plans) == sorted(
        f"syscalls:sys_exit_{s}" for s in ("openat2", "openat", "open", "creat"))
    assert {p.fn_name for p in cp.attach_plans} == {cp.fn_name}
    assert "every openat2, openat, open and creat call" in cp.notes[0]
    entry = compile_session([Probe(ProbeKind.KPROBE, "do_sys_openat2")], facts=HERE).probes[0]
    assert "openat, open and creat calls also reach do_sys_openat2 and are not covered" in entry.notes[0]


def test_no_fallback_offers_the_nearest_probe_that_works():
    cp = compile_session([Probe(ProbeKind.KPROBE, "schedule")], facts=HERE).probes[0]
    # the way forward comes first: the app's banner at 80x24 shows a sentence's first lines only
    assert cp.error.startswith(
        "kprobe:schedule cannot be placed here; the nearest probe that works here is tracepoint:sched:sched_switch ("), cp.error
    assert "kprobes are not available" in cp.error  # and why, after it


# --- names checked before anything compiles ----------------------------------------

class _Cat:
    names = ["kprobe:do_sys_openat2", "kprobe:do_sys_open", "tracepoint:sched:sched_switch"]

    def lookup(self, name):
        return object() if name in self.names else None


def test_missing_names_are_refused_with_the_closest_ones():
    with pytest.raises(UsageError, match=r"no kernel function do_sys_opnat2 in this kernel; did you mean "
                                         r"do_sys_openat2 or do_sys_open\?"):
        check_exists(Probe(ProbeKind.KRETPROBE, "do_sys_opnat2"), _Cat())
    with pytest.raises(UsageError, match=r"no tracepoint sched:sched_swich .*did you mean sched:sched_switch\?"):
        check_exists(Probe(ProbeKind.TRACEPOINT, "sched:sched_swich"), _Cat())
    check_exists(Probe(ProbeKind.KPROBE, "do_sys_openat2"), _Cat())
    assert did_you_mean("this_function_does_not_exist_anywhere", ["em_not", "exit_aio"]) == ""


def test_a_program_that_does_not_exist_and_a_stripped_one_say_so(tmp_path):
    with pytest.raises(UsageError, match="there is no program /nonexistent/prog"):
        check_exists(Probe(ProbeKind.UPROBE, "main", binary="/nonexistent/prog"), None)
    ls = "/usr/bin/ls"
    if not os.path.exists(ls):
        pytest.skip("no /usr/bin/ls")
    from elftools.elf.elffile import ELFFile

    with open(ls, "rb") as f:
        if ELFFile(f).get_section_by_name(".symtab") is not None:
            pytest.skip("this ls is not stripped")
    with pytest.raises(UsageError, match=r"/usr/bin/ls has no symbol main: it is stripped .*-dbgsym.*"
                                         r"/usr/lib/debug/\.build-id/"):
        check_exists(Probe(ProbeKind.UPROBE, "main", binary=ls), None)


@needs_root
def test_compile_and_record_refuse_a_missing_function_in_one_sentence(tmp_path, capsys):
    assert main(["compile", "--emit", "none", "kprobe:this_function_does_not_exist_anywhere"]) == 1
    err = capsys.readouterr().err
    assert "there is no kernel function this_function_does_not_exist_anywhere" in err and "Traceback" not in err
    out = tmp_path / "r.ktrec"
    assert main(["record", "-o", str(out), "kprobe:do_sys_opnat2", "-d", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "did you mean do_sys_openat2" in err and not out.exists()
    assert main(["record", "-o", str(out), "tracepoint:syscalls:sys_enter_openat", "--filter", "filename =="]) == 2
    assert "Traceback" not in capsys.readouterr().err and not out.exists()


# --- faults are faults ----------------------------------------------------------------

def test_faulted_fetches_are_named_and_have_no_value():
    from ktui.formats.rows import faulted_fields

    layout = ProbeLayout(0, "p", "tracepoint:x:y", (FieldLayout("dfd", "<i8", "s"), FieldLayout("filename", "S64", "string")))
    assert faulted_fields(layout, 0) == []
    assert faulted_fields(layout, 1 << 1) == ["filename"]
    assert faulted_fields(layout, 1 << 31) == []  # "return without entry" is not a fault


# --- live, on this kernel ------------------------------------------------------------

def _rows(path) -> list[dict]:
    out = subprocess.run([sys.executable, "-W", "ignore", "-m", "ktui", "export", "--format", "jsonl", "-o", "-",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


@needs_root
@pytest.mark.live
def test_record_filter_keeps_exactly_the_childs_opens_of_a_path(tmp_path):
    out = tmp_path / "r.ktrec"
    assert main(["record", "-q", "-o", str(out), "tracepoint:syscalls:sys_enter_openat",
                 "--filter", 'filename == "/etc/hostname"', "--",
                 "cat", "/etc/hostname", "/etc/passwd", "/etc/hostname", "/etc/hostname"]) == 0
    rows = _rows(out)
    assert [r["filename"] for r in rows] == ["/etc/hostname"] * 3
    assert len({r["pid"] for r in rows}) == 1 and all(r["comm"] == "cat" for r in rows)
    assert all(r["dfd"] == -100 for r in rows)  # AT_FDCWD, signed as its C type says


@needs_root
@pytest.mark.live
def test_sys_exit_ret_filter_and_the_kretprobe_fallback_catch_failed_opens(tmp_path):
    for spec, column in (("tracepoint:syscalls:sys_exit_openat", "ret"), ("kretprobe:do_sys_openat2", "retval")):
        out = tmp_path / f"{column}.ktrec"
        flt = f"{column} < 0"
        assert main(["record", "-q", "-o", str(out), spec, "--filter", flt, "--",
                     "cat", "/nonexistent-ktui-a", "/etc/hostname", "/nonexistent-ktui-b"]) == 0
        rows = _rows(out)
        assert len(rows) >= 2, spec  # at least the two missing paths (the C library may try more)
        assert all(r[column] == -2 for r in rows), spec  # ENOENT, nothing else got through the filter
        assert len({r["pid"] for r in rows}) == 1


@needs_root
@pytest.mark.live
def test_record_session_runs_a_saved_session(tmp_path):
    from ktui.session import Session

    path = tmp_path / "s.toml"
    Session([Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_openat", filter='filename == "/etc/hostname"')]).save(path)
    out = tmp_path / "r.ktrec"
    assert main(["record", "-q", "-o", str(out), "--session", str(path), "--",
                 "cat", "/etc/hostname", "/etc/hostname"]) == 0
    assert [r["filename"] for r in _rows(out)] == ["/etc/hostname"] * 2


@needs_root
@pytest.mark.live
def test_editor_flow_zero_script_capture_and_a_string_filter_on_the_real_kernel():
    """Pick sys_enter_openat in the editor, tick nothing, filter on the file name, add: the stream
    shows the child's opens of that path, exactly, with the name as a string."""
    from ktui.app import KtuiApp
    from ktui.app_main import _live_factory
    from ktui.widgets.event_stream import EventStream

    n = 5
    code = ("import sys; sys.stdin.buffer.read(1)\n"
            f"for _ in range({n}): open('/etc/hostname').close()\n"
            "open('/etc/passwd').close()\n")

    async def run():
        app = KtuiApp(probes=[], source_factory=_live_factory, mode="live")
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(0.5)
            app.action_show_tab("probes")
            await pilot.pause()
            app.query_one("#editor-spec").value = "tracepoint:syscalls:sys_enter_openat"
            await pilot.pause()
            app.query_one("#editor-filter").value = 'filename == "/etc/hostname"'
            await pilot.pause()
            assert "filter ok" in str(app.query_one("#editor-filter-error").render())
            app.query_one("#editor").action_add_probe()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (app.states.get(0) and app.states[0].status == "attached"):
                await pilot.pause(0.1)
            assert app.states[0].status == "attached", app.states
            child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
            child.stdin.write(b"x")
            child.stdin.close()
            assert await asyncio.to_thread(child.wait) == 0
            stream = app.query_one(EventStream)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and stream.window.count(pid=child.pid) < n:
                await pilot.pause(0.1)
            await pilot.pause(0.5)
            assert stream.window.count(pid=child.pid) == n
            layout = stream.layouts[0]
            names = [f.name for f in layout.fields]
            assert names == ["dfd", "filename", "flags_value", "mode"]
            rows = [stream.row_text(*stream.window.record(stream.window.visible_abs(i))).plain
                    for i in range(stream.window.visible_count)]
            mine = [r for r in rows if f" {child.pid} " in r]
            assert len(mine) == n and all("filename='/etc/hostname'" in r for r in mine), mine
            await pilot.press("q")

    asyncio.run(run())


# --- uprobe arguments by name, from DWARF -------------------------------------------

WORK_C = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((noinline, used)) int work(int x, const char *s) {
    __asm__ volatile("" ::: "memory");
    return x + (s[0] == 'c');
}
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    char buf[32];
    long t = 0;
    for (int i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "call-%d", i);
        t += work(i * 3 - 5, buf);
    }
    return t == 12345;
}
"""


def _work_program(tmp_path) -> str:
    src = tmp_path / "work.c"
    src.write_text(WORK_C)
    out = tmp_path / "work"
    subprocess.run(["gcc", "-g", "-O1", "-fno-inline", "-o", str(out), str(src)], check=True)
    return str(out)


def _symbol_offset(path: str, name: str) -> int:
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        sym = elf.get_section_by_name(".symtab").get_symbol_by_name(name)[0]
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= sym["st_value"] < seg["p_vaddr"] + seg["p_memsz"]:
                return sym["st_value"] - seg["p_vaddr"] + seg["p_offset"]
    raise AssertionError("no segment holds the symbol")


@needs_root
@pytest.mark.live
def test_uprobe_arguments_by_name_from_dwarf_are_exactly_what_was_passed(tmp_path):
    prog = _work_program(tmp_path)
    n = 7
    expected = [{"x": i * 3 - 5, "s": f"call-{i}"} for i in range(n)]
    out = tmp_path / "byname.ktrec"
    # nothing asked for: every parameter by name and type (int x, const char *s)
    assert main(["record", "-q", "-o", str(out), f"uprobe:{prog}:work", "--", prog, str(n)]) == 0
    assert [{"x": r["x"], "s": r["s"]} for r in _rows(out)] == expected
    # by name in a filter, as a string
    out = tmp_path / "filtered.ktrec"
    assert main(["record", "-q", "-o", str(out), f"uprobe:{prog}:work", "--filter", 's == "call-4" || x < 0',
                 "--", prog, str(n)]) == 0
    assert [r["s"] for r in _rows(out)] == ["call-0", "call-1", "call-4"]
    # the uprobe_events form: PATH:OFFSET with register fetches
    out = tmp_path / "events.ktrec"
    line = f"p:w {prog}:{_symbol_offset(prog, 'work'):#x} x=%di:s32 s=+0(%si):string"
    assert main(["record", "-q", "-o", str(out), line, "--", prog, str(n)]) == 0
    assert [{"x": r["x"], "s": r["s"]} for r in _rows(out)] == expected
    # entry and return on the same function both attach
    out = tmp_path / "both.ktrec"
    assert main(["record", "-q", "-o", str(out), f"uprobe:{prog}:work", f"uretprobe:{prog}:work",
                 "--", prog, str(n)]) == 0
    rows = _rows(out)
    assert [r["probe"] for r in rows] == ["work", "work_ret"] * n
    assert [r["retval"] for r in rows[1::2]] == [e["x"] + 1 for e in expected]
