"""Struct members of uprobe arguments, through the program's DWARF (issue 12): ``p->x``,
``$p->name`` at ``uprobe:PROG:touch`` resolved once (ktui.probes.resolve with
ktui.catalog.dwarf_members), planned as offsets, read with bpf_probe_read_user and
bpf_probe_read_user_str. A program compiled here with ``gcc -g -O0`` calls ``touch`` N times
with values it chose; the real ``ktui record`` gives exactly N events with exactly those
values, in each spelling, and the editor offers and builds the same members."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys

import pytest

from ktui.cli import main
from ktui.compiler import compile_session
from ktui.compiler.fallback import KernelFacts
from ktui.probes.model import Arg, Fetch, Member, Probe, ProbeKind

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="loads BPF programs")
pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

POINT_C = r"""
#include <stdio.h>
#include <stdlib.h>
struct point { int x; long y; const char *name; };
__attribute__((noinline, used)) void touch(struct point *p) { __asm__ volatile("" ::: "memory"); }
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    char buf[16];
    for (int i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "pt-%d", i);  /* written here: its page is present when touch runs */
        struct point p = { i, i * 1000L, buf };
        touch(&p);
    }
    return 0;
}
"""
N = 7


def _program(tmp_path, debug: bool = True) -> str:
    src = tmp_path / "point.c"
    src.write_text(POINT_C)
    out = tmp_path / ("point" if debug else "point-nodebug")
    subprocess.run(["gcc", "-O0", *(["-g"] if debug else []), "-o", str(out), str(src)], check=True)
    return str(out)


def _expected(keys=("x", "y", "name")) -> list[dict]:
    full = [{"x": i, "y": i * 1000, "name": f"pt-{i}"} for i in range(N)]
    return [{f"p_{k}": e[k] for k in keys} for e in full]


def _rows(path) -> list[dict]:
    out = subprocess.run([sys.executable, "-W", "ignore", "-m", "ktui", "export", "--format", "jsonl", "-o", "-",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_compiled_reads_are_user_reads_at_dwarf_offsets(tmp_path):
    """Offsets come from the DWARF (checked against the program's own offsetof), every read is a
    user read, the char pointer a user string; nothing of the typed names reaches the C text."""
    prog = _program(tmp_path)
    probe = Probe(ProbeKind.UPROBE, "touch", binary=prog, fetches=[
        Fetch("a", Member(Arg(name="p"), ("x",))), Fetch("b", Member(Arg(name="p"), ("y",))),
        Fetch("c", Member(Arg(name="p"), ("name",)))])
    cprog = compile_session([probe], facts=KernelFacts(kprobes=False, fentry=False, fentry_reason="EPERM"),
                            fallback=False)
    cp = cprog.probes[0]
    assert cp.error is None, cp.error
    assert cp.fetch_reads == {"a": "bpf_probe_read_user", "b": "bpf_probe_read_user",
                              "c": "bpf_probe_read_user_str"}
    assert {f.name: (str(f.dtype), f.display) for f in cp.layout.fields} == {
        "a": ("<i4", "s"), "b": ("<i8", "s"), "c": ("S64", "string")}
    lines = {n: next(line.split("//")[0] for line in cprog.c_text.splitlines() if f"ktui:fetch {n} " in line)
             for n in "abc"}
    oracle = tmp_path / "offsets.c"
    oracle.write_text(POINT_C.split("__attribute__")[0] + "#include <stddef.h>\nint main(void) { printf(\"%zu %zu\\n\","
                      " offsetof(struct point, y), offsetof(struct point, name)); return 0; }\n")
    subprocess.run(["gcc", "-o", str(tmp_path / "offsets"), str(oracle)], check=True)
    y_off, name_off = subprocess.run([str(tmp_path / "offsets")], capture_output=True, text=True,
                                     check=True).stdout.split()
    assert "ktui_read_u32(PT_REGS_PARM1(ctx), &flt)" in lines["a"]
    assert f"ktui_read_u64(PT_REGS_PARM1(ctx) + {y_off}, &flt)" in lines["b"]
    assert f"bpf_probe_read_user_str(v->f_c, sizeof(v->f_c), (void *)ktui_read_u64(PT_REGS_PARM1(ctx) + {name_off}" \
        in lines["c"]
    for line in lines.values():
        assert "name" not in line.replace("f_c", "") and "->x" not in line and "->y" not in line


@needs_root
@pytest.mark.live
def test_record_uprobe_members_gives_exactly_the_values_passed(tmp_path):
    prog = _program(tmp_path)
    # SystemTap's spelling: $p->x, $p->y, $p->name
    out = tmp_path / "stap.ktrec"
    stap = f'probe process("{prog}").function("touch") {{ printf("%d %d %s", $p->x, $p->y, $p->name) }}'
    assert main(["record", "-q", "-o", str(out), stap, "--", prog, str(N)]) == 0
    rows = _rows(out)
    assert [{k: r[k] for k in ("p_x", "p_y", "p_name")} for r in rows] == _expected()
    assert all("faulted" not in r for r in rows)
    # bpftrace's name with the members in a filter (p->name compared as a string, in the kernel)
    out = tmp_path / "filter.ktrec"
    assert main(["record", "-q", "-o", str(out), f"uprobe:{prog}:touch", "--filter",
                 'p->x >= 2 && p->name != "pt-5" && p->y < 6500', "--", prog, str(N)]) == 0
    rows = _rows(out)
    assert [(r["p_x"], r["p_name"], r["p_y"]) for r in rows] == [(i, f"pt-{i}", i * 1000) for i in (2, 3, 4, 6)]


@needs_root
@pytest.mark.live
def test_uprobe_members_on_a_return_probe_read_the_entry_argument(tmp_path):
    """A member of an argument at a uretprobe is read on the entry side (the argument's register
    is gone at the return): N calls, N events, the values of each call."""
    prog = _program(tmp_path)
    out = tmp_path / "ret.ktrec"
    stap = f'probe process("{prog}").function("touch").return {{ printf("%d %s", $p->x, $p->name) }}'
    assert main(["record", "-q", "-o", str(out), stap, "--", prog, str(N)]) == 0
    assert [{k: r[k] for k in ("p_x", "p_name")} for r in _rows(out)] == _expected(("x", "name"))


@pytest.mark.parametrize("args, sentence", [
    (["--filter", 'p->nmae == "x"'], "p->nmae: struct point has no member named 'nmae'; did you mean name?"),
    (["--filter", "p->x->z > 0"], "p->x->z: x is int, not a struct: it has no member 'z'"),
])
def test_an_unknown_member_is_one_sentence_and_a_failure(tmp_path, capsys, args, sentence):
    prog = _program(tmp_path)
    assert main(["compile", "--emit", "none", *args, f"uprobe:{prog}:touch"]) != 0
    err = capsys.readouterr().err
    assert sentence in err and "Traceback" not in err
    stap = f'probe process("{prog}").function("touch") {{ printf("%d", $p->nmae) }}'
    assert main(["compile", "--emit", "none", stap]) != 0
    err = capsys.readouterr().err
    assert "struct point has no member named 'nmae'; did you mean name?" in err and "Traceback" not in err


@needs_root
@pytest.mark.live
def test_record_refuses_an_unknown_member_before_tracing(tmp_path, capsys):
    prog = _program(tmp_path)
    out = tmp_path / "bad.ktrec"
    rc = main(["record", "-q", "-o", str(out), f"uprobe:{prog}:touch", "--filter", "p->nmae > 0",
               "--", prog, str(N)])
    err = capsys.readouterr().err
    assert rc != 0 and "p->nmae: struct point has no member named 'nmae'; did you mean name?" in err
    assert "Traceback" not in err


def test_a_program_without_dwarf_says_so_in_one_sentence(tmp_path, capsys):
    prog = _program(tmp_path, debug=False)
    assert main(["compile", "--emit", "none", "--filter", "p->x > 0", f"uprobe:{prog}:touch"]) != 0
    err = capsys.readouterr().err
    assert f"{prog} has no DWARF debug info (build with -g" in err and "Traceback" not in err
    stap = f'probe process("{prog}").function("touch") {{ printf("%d", $arg1->x) }}'
    assert main(["compile", "--emit", "none", stap]) != 0
    err = capsys.readouterr().err
    assert f"{prog} has no DWARF debug info" in err and "Traceback" not in err


# --- the editor: one resolution for the picker, the filter and the probe built ---------------

def test_draft_offers_builds_and_checks_uprobe_members(tmp_path):
    from ktui.errors import KtuiError
    from ktui.probes.draft import ProbeDraft

    prog = _program(tmp_path)
    draft = ProbeDraft(spec=f"uprobe:{prog}:touch", ticked=("p->x", "p->name"), filter='p->name == "pt-3"')
    names = draft.names()
    assert names.expandable("p")
    offered = ProbeDraft.members(names, "p")
    assert [(r.text, r.ctype) for r in offered] == [("p->x", "int"), ("p->y", "long int"),
                                                    ("p->name", "const char *")]
    assert [r.value_type().kind for r in offered] == ["s", "s", "ustring"]
    (probe,) = draft.build()
    assert probe.fetches == [Fetch("p_x", Member(Arg(name="p"), ("x",))),
                             Fetch("p_name", Member(Arg(name="p"), ("name",)))]
    with pytest.raises(KtuiError, match="struct point has no member named 'nmae'; did you mean name"):
        ProbeDraft(spec=f"uprobe:{prog}:touch", filter="p->nmae > 1").check_filter(names)
    nodebug = _program(tmp_path, debug=False)
    assert not ProbeDraft(spec=f"uprobe:{nodebug}:touch").names().expandable("p")


@needs_root
@pytest.mark.live
def test_the_editor_counts_by_a_member_and_the_kernel_table_has_each_value_once(tmp_path):
    """COUNT key p->x in the editor: accepted as the filter would resolve it (an unknown member is the
    filter's sentence, in the count field), and the recorded table holds x = 0..N-1 once each."""
    from ktui.errors import KtuiError
    from ktui.probes.draft import ProbeDraft
    from ktui.recording import RecordingReader
    from ktui.session import Session

    prog = _program(tmp_path)
    draft = ProbeDraft(spec=f"uprobe:{prog}:touch", ticked=("p->name",), stream=False, count=True, count_key="p->x")
    (probe,) = draft.build()
    with pytest.raises(KtuiError, match="count key 'p->nmae': .*did you mean name") as bad:
        ProbeDraft(spec=f"uprobe:{prog}:touch", count=True, count_key="p->nmae").build()
    assert bad.value.where == "count"
    session = tmp_path / "count.toml"
    Session([probe]).save(session)
    out = tmp_path / "count.ktrec"
    assert main(["record", "-q", "--session", str(session), "-o", str(out), "--", prog, str(N)]) == 0
    with RecordingReader.open(out) as reader:
        tables = [t for t in reader.key_counts() if t.key_names]
    assert len(tables) == 1 and sorted(tables[0].rows) == [((i,), 1) for i in range(N)], tables


@needs_root
def test_editor_member_picker_lists_the_uprobe_structs_members(tmp_path):
    """Through Textual's pilot: on uprobe:PROG:touch the right arrow on p lists p->x, p->y and
    p->name from the program's DWARF; space ticks p->y; the probe built records p_y."""
    from ktui.app import KtuiApp

    prog = _program(tmp_path)

    async def run():
        app = KtuiApp(probes=[], mode="live", source_factory=None)
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause(0.3)
            app.action_show_tab("probes")
            await pilot.pause()
            app.query_one("#editor-spec").value = f"uprobe:{prog}:touch"
            await pilot.pause()
            box = app.query_one("#editor-args")
            values = [box.get_option_at_index(i).value for i in range(box.option_count)]
            assert values == ["p"]
            box.focus()
            box.highlighted = 0
            await pilot.press("right")
            values = [box.get_option_at_index(i).value for i in range(box.option_count)]
            assert values == ["p", "p->x", "p->y", "p->name"]
            box.highlighted = values.index("p->y")
            await pilot.press("space")
            probes = app.query_one("#editor").build()
            await pilot.press("q")
            return probes

    (probe,) = asyncio.run(run())
    assert probe.fetches == [Fetch("p_y", Member(Arg(name="p"), ("y",)))]


def test_list_members_shows_the_programs_struct_from_its_dwarf(tmp_path):
    """``ktui list -v --members`` on a uprobe: the members of the struct its argument points at,
    with the offsets gcc gave them (offsetof, printed by a program built from the same struct)."""
    prog = _program(tmp_path)
    oracle = tmp_path / "offsets.c"
    oracle.write_text(POINT_C.split("__attribute__")[0] + "#include <stddef.h>\nint main(void) { printf(\"%zu %zu %zu\\n\","
                      " offsetof(struct point, x), offsetof(struct point, y), offsetof(struct point, name)); return 0; }\n")
    subprocess.run(["gcc", "-o", str(tmp_path / "offsets"), str(oracle)], check=True)
    x, y, name = (int(v) for v in subprocess.run([str(tmp_path / "offsets")], capture_output=True, text=True,
                                                 check=True).stdout.split())
    out = subprocess.run([sys.executable, "-m", "ktui", "list", "-v", "--members", f"uprobe:{prog}:touch"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[:5] == [f"uprobe:{prog}:touch", "    struct point * p", f"        int p->x  // +0x{x:x}",
                       f"        long int p->y  // +0x{y:x}", f"        const char * p->name  // +0x{name:x}"]


@needs_root
@pytest.mark.live
def test_record_command_reaches_the_uprobes_of_the_programs_it_starts(tmp_path):
    """`ktui record -- sh -c 'PROG 3; PROG 4 &'`: the uprobe on PROG fires in the command's children
    (they are in its cgroup; attached for the shell's pid alone it saw nothing), and a run of PROG
    outside the command at the same time is not recorded: exactly 3 + 4 events."""
    prog = _program(tmp_path)
    outside = subprocess.Popen(["sh", "-c", f"while :; do {prog} 5; sleep 0.05; done"], stdout=subprocess.DEVNULL)
    try:
        out = tmp_path / "children.ktrec"
        assert main(["record", "-q", "-o", str(out), f"uprobe:{prog}:touch", "--filter", "p->x >= 0", "--",
                     "sh", "-c", f"sleep 0.3; {prog} 3; {prog} 4 & wait"]) == 0
    finally:
        outside.kill()
        outside.wait()
    rows = _rows(out)
    assert [r["p_x"] for r in rows] == [0, 1, 2, 0, 1, 2, 3]
    assert len({r["pid"] for r in rows[:3]}) == 1 and len({r["pid"] for r in rows[3:]}) == 1
    assert rows[0]["pid"] != rows[3]["pid"]


LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
FILENO_C = r"""
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    long t = 0;
    for (int i = 0; i < n; i++)
        t += fileno(i % 2 ? stdout : stderr);
    return t == 12345;
}
"""


@needs_root
@pytest.mark.live
def test_a_librarys_struct_members_come_from_its_build_id_debug_file(tmp_path):
    """libc's `fileno(FILE *fp)`: FILE's layout from libc's debug file under /usr/lib/debug/.build-id/
    (Debian's libc6-dbg); fp->_fileno of stderr and stdout alternate, one event a call."""
    from ktui.probes.resolve import user_member_types

    if not os.path.exists(LIBC) or user_member_types(LIBC, "fileno")[0] is None:
        pytest.skip("libc's debug file (libc6-dbg) is not installed")
    (tmp_path / "fileno.c").write_text(FILENO_C)
    prog = tmp_path / "fileno"
    subprocess.run(["gcc", "-O0", "-o", str(prog), str(tmp_path / "fileno.c")], check=True)
    out = tmp_path / "libc.ktrec"
    assert main(["record", "-q", "-o", str(out), f"uprobe:{LIBC}:fileno", "--filter", "fp->_fileno >= 0",
                 "--", str(prog), str(N)]) == 0
    assert [r["fp__fileno"] for r in _rows(out)] == [2 if i % 2 == 0 else 1 for i in range(N)]


GET_C = r"""
#include <stdio.h>
#include <stdlib.h>
struct inner { short a; char tag[12]; };
static struct inner g[16];
__attribute__((noinline, used)) struct inner *get(int i) {
    snprintf(g[i].tag, sizeof g[i].tag, "tag%d", i);
    g[i].a = i * 7;
    return &g[i];
}
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    long t = 0;
    for (int i = 0; i < n; i++)
        t += get(i)->a;
    return t == 12345;
}
"""


@needs_root
@pytest.mark.live
def test_members_of_a_returned_struct_pointer_at_a_uretprobe(tmp_path):
    """retval->a and retval->tag (a char array, read as a user string) in a filter at a uretprobe:
    exactly the calls the filter keeps, with the values the function returned."""
    (tmp_path / "get.c").write_text(GET_C)
    prog = tmp_path / "get"
    subprocess.run(["gcc", "-g", "-O0", "-o", str(prog), str(tmp_path / "get.c")], check=True)
    out = tmp_path / "ret.ktrec"
    assert main(["record", "-q", "-o", str(out), f"uretprobe:{prog}:get", "--filter",
                 'retval->a >= 7 && retval->tag != "tag3"', "--", str(prog), str(N)]) == 0
    assert [(r["retval_a"], r["retval_tag"]) for r in _rows(out)] == [(i * 7, f"tag{i}") for i in range(1, N) if i != 3]
