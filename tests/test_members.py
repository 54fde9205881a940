"""Struct members through pointers (issue 12): skb->len, args->skb->len, a->b->c and
sk->__sk_common.skc_dport in the filter language (bpftrace's spelling), SystemTap's $skb->len
and kprobe_events' skb->len / $arg1->dev->mtu, resolved once (ktui.probes.resolve) from the
kernel's BTF, planned by the compiler and read with bpf_probe_read_kernel; the editor's member
picker and `ktui list -v --members`. Offsets are checked against this kernel's own BTF, never
hard-coded; programs go through the real verifier; a live test reads a member on this kernel
(a raw tracepoint: kprobes are only in the VM suite, tests/kernel/test_members.py)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from ktui.cli import main
from ktui.compiler import compile_session
from ktui.compiler.fallback import KernelFacts
from ktui.compiler.verify import verify_program
from ktui.errors import KtuiError, ParseError
from ktui.probes.filter import parse_filter
from ktui.probes.filter_ast import Name, names_in
from ktui.probes.kprobe_events import format_kprobe_event, parse_kprobe_event
from ktui.probes.model import Arg, Fetch, Member, Probe, ProbeKind, Retval, ValueType
from ktui.probes.resolve import kernel_types, split_member_name, struct_of

KPROBES = KernelFacts(kprobes=True, fentry=False, fentry_reason="EPERM")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="loads BPF programs and reads tracefs")
BTF, _WHY = kernel_types()
needs_btf = pytest.mark.skipif(BTF is None, reason=f"no kernel BTF: {_WHY}")


def _btf_offset(struct: str, *path: str) -> int:
    fp = BTF.resolve_path(struct, list(path))  # type: ignore[union-attr]
    assert not fp.hops
    return fp.offset


# --- spelling ---------------------------------------------------------------------------

def test_member_names_in_every_spelling():
    assert split_member_name("skb->len") == ("skb", ("len",))
    assert split_member_name("args->skb->len") == ("skb", ("len",))
    assert split_member_name("args.skb->dev->name") == ("skb", ("dev", "name"))
    assert split_member_name("sk->__sk_common.skc_dport") == ("sk", ("__sk_common", "skc_dport"))
    assert split_member_name("args->filename") == ("filename", ())
    assert split_member_name("pid") == ("pid", ())
    for bad in ("skb->", "->len", "skb-->len", "skb->1x", "a" + "->b" * 9):
        assert split_member_name(bad) is None, bad
    assert struct_of("struct sk_buff *") == "sk_buff"
    assert struct_of("const struct sock *") == "sock"
    assert struct_of("struct sk_buff **") is None and struct_of("int") is None and struct_of("char *") is None


def test_filter_language_reads_member_paths():
    node = parse_filter('args->skb->len > 1000 && sk->__sk_common.skc_dport != 0 and args->filename == "x"')
    assert [n.name for n in names_in(node)] == ["skb->len", "sk->__sk_common.skc_dport", "filename"]
    assert parse_filter("skb->len>1") is not None
    with pytest.raises(ParseError, match="deeper than 8"):
        parse_filter("a->b->c->d->e->f->g->h->i->j > 1")
    assert isinstance(parse_filter("a->b").__class__, type) and isinstance(parse_filter("a->b"), Name)


def test_kprobe_events_member_syntax_as_the_kernel_takes_it():
    p = parse_kprobe_event("p:ipr ip_rcv len=skb->len $arg1->dev->mtu:u32 port=sk.x")
    assert p.fetches == [Fetch("len", Member(Arg(name="skb"), ("len",))),
                         Fetch("arg2", Member(Arg(index=1), ("dev", "mtu")), ValueType("u", 32)),
                         Fetch("port", Member(Arg(name="sk"), ("x",)))]
    assert format_kprobe_event(p) == "p:ipr ip_rcv len=skb->len $arg1->dev->mtu:u32 port=sk->x"
    r = parse_kprobe_event("r:x f v=$retval->len")
    assert r.fetches == [Fetch("v", Member(Retval(), ("len",)))]
    for line, sentence in (("p:x f+4 l=skb->len", "only for a probe on the function entry"),
                           ("p:x f l=$stack->len", "only arguments and \\$retval have struct members"),
                           ("p:x f l=$comm->len", "only arguments and \\$retval"),
                           ("p:x f l=" + "a" + "->b" * 9, "deeper than 8")):
        with pytest.raises(ParseError, match=sentence):
            parse_kprobe_event(line)


# --- compiled: offsets from BTF, read with bpf_probe_read_kernel, through the verifier -------

def _compile(probe: Probe):
    prog = compile_session([probe], facts=KPROBES, fallback=False)
    cp = prog.probes[0]
    return prog, cp


@needs_btf
@needs_root
def test_skb_len_in_a_filter_is_fetched_by_member_name_and_verified():
    prog, cp = _compile(Probe(ProbeKind.KPROBE, "ip_rcv", filter="args->skb->len > 1000 && skb->len < 9000"))
    assert cp.error is None, cp.error
    cols = {f.name: f for f in cp.layout.fields}
    assert "skb_len" in cols and cols["skb_len"].dtype == "<u4"
    assert [f.name for f in cp.layout.fields].count("skb_len") == 1  # two spellings, one column
    off = _btf_offset("sk_buff", "len")
    assert f"ktui_read_k32(PT_REGS_PARM1(ctx) + {off}, &flt)" in prog.c_text
    assert "bpf_probe_read_kernel" in cp.fetch_reads["skb_len"]
    assert "(u64)v->f_skb_len > (u64)1000" in prog.c_text
    verify_program(prog)


@needs_btf
@needs_root
def test_nested_members_follow_each_pointer_and_strings_are_strings():
    prog, cp = _compile(Probe(ProbeKind.KPROBE, "ip_rcv", filter='skb->dev->name == "lo" && skb->dev->mtu > 0'))
    assert cp.error is None, cp.error
    dev = _btf_offset("sk_buff", "dev")
    name = _btf_offset("net_device", "name")
    assert f"ktui_read_k64(PT_REGS_PARM1(ctx) + {dev}, &flt)" in prog.c_text
    assert f"ktui_read_k64(PT_REGS_PARM1(ctx) + {dev}, &flt) + {name}" in prog.c_text
    assert cp.fetch_reads["skb_dev_name"] == "bpf_probe_read_kernel_str"
    kinds = {f.name: f.display for f in cp.layout.fields}
    assert kinds["skb_dev_name"] == "string"
    verify_program(prog)
    prog, cp = _compile(Probe(ProbeKind.KPROBE, "tcp_v4_connect", filter="sk->__sk_common.skc_dport != 0"))
    assert cp.error is None, cp.error
    assert f"PT_REGS_PARM1(ctx) + {_btf_offset('sock', '__sk_common', 'skc_dport')}" in prog.c_text
    verify_program(prog)


@needs_btf
def test_member_fetches_plan_no_c_from_user_text():
    """Whatever the user names, only numbers (offsets from BTF) reach the C text."""
    probe = Probe(ProbeKind.KPROBE, "ip_rcv", fetches=[Fetch("l", Member(Arg(name="skb"), ("len",)))])
    prog, cp = _compile(probe)
    assert cp.error is None
    fetch_line = next(line for line in prog.c_text.splitlines() if "ktui:fetch l " in line)
    assert "len" not in fetch_line.split("//")[0]


@pytest.mark.parametrize("flt, sentence", [
    ("skb->nope > 1", "skb->nope: struct sk_buff has no member named 'nope'"),
    ("nosuch->len > 1", "this probe has no argument or field nosuch (it has: skb, dev, pt, orig_dev)"),
    ('skb->len == "x"', "cannot compare 'skb->len' (int) with \"x\" (string)"),
    ("skb->len->x > 1", "len is unsigned int, not a struct"),
    ("skb->dev->dev > 1", "is struct device, not a number or string"),
    ("arg1->len > 0 && skb->users > 0", "not a number or string"),
])
@needs_btf
def test_bad_member_names_are_one_sentence(flt, sentence, capsys):
    assert main(["compile", "--emit", "none", "--no-fallback", "--filter", flt, "kprobe:ip_rcv"]) == 1
    err = capsys.readouterr().err
    assert sentence in err and "Traceback" not in err


@needs_btf
def test_members_of_user_memory_and_unknown_types_are_refused_in_one_sentence(capsys):
    # openat2's `how` is a user pointer: no kernel layout to read it by
    assert main(["compile", "--emit", "none", "--filter", "how->flags > 0", "kprobe:do_sys_openat2"]) == 1
    assert "in user memory" in capsys.readouterr().err
    assert main(["compile", "--emit", "none", "--filter", "filename->x > 0",
                 "tracepoint:syscalls:sys_enter_openat"]) == 1
    assert "in user memory" in capsys.readouterr().err


@needs_btf
def test_arg_numbers_are_range_checked_against_the_prototype(capsys):
    assert main(["compile", "--emit", "none", "--no-fallback", "p:x vfs_read a=$arg5"]) == 1
    assert "arg5: vfs_read takes 4 arguments, so arg1..arg4 exist" in capsys.readouterr().err
    assert main(["compile", "--emit", "none", "--no-fallback", "p:x vfs_read a=$arg4"]) == 0


# --- list -v --members ----------------------------------------------------------------------

@needs_btf
def test_list_members_prints_struct_pointer_members_with_btf_offsets():
    out = subprocess.run([sys.executable, "-m", "ktui", "list", "-v", "--members", "kprobe:ip_rcv"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "kprobe:ip_rcv"
    assert "    struct sk_buff * skb" in out
    assert f"        unsigned int skb->len  // +0x{_btf_offset('sk_buff', 'len'):x}" in out
    assert f"        struct net_device * skb->dev  // +0x{_btf_offset('sk_buff', 'dev'):x}" in out


# --- the editor: member picker -------------------------------------------------------------

@needs_btf
def test_draft_builds_ticked_members_and_checks_member_filters():
    from ktui.probes.draft import ProbeDraft

    from ktui.catalog import Catalog

    catalog = Catalog.load()
    draft = ProbeDraft(spec="kprobe:ip_rcv", ticked=("skb->len", "skb->dev->mtu"), filter="skb->len > 100")
    names = draft.names(catalog)
    offered = [r.text for r in ProbeDraft.members(names, "skb")]
    assert "skb->len" in offered and "skb->cb" in offered  # numbers and strings, one level
    assert "skb->dev" in offered and "skb->headers" not in offered  # a struct by value is not offered
    (probe,) = draft.build(catalog)
    assert probe.fetches == [Fetch("skb_len", Member(Arg(name="skb"), ("len",))),
                             Fetch("skb_dev_mtu", Member(Arg(name="skb"), ("dev", "mtu")))]
    with pytest.raises(KtuiError, match="no member named 'nope'"):
        ProbeDraft(spec="kprobe:ip_rcv", filter="skb->nope > 1").check_filter(names)


@needs_btf
def test_raw_tracepoint_arguments_are_named_as_the_compiler_counts_them():
    """BTF names no raw tracepoint parameter: the editor, the filter and the compiler all call
    them arg1..argN, so what the editor offers (a member of arg3) is what gets compiled."""
    from ktui.catalog import Catalog
    from ktui.probes.draft import ProbeDraft

    catalog = Catalog.load()
    draft = ProbeDraft(spec="rawtracepoint:sched_process_exec", ticked=("arg2", "arg3->filename"),
                       filter='arg3->filename == "/x" && arg1->pid > 0')
    names = draft.names(catalog)
    assert [a.name for a in names.args] == ["arg1", "arg2", "arg3"]
    assert [a.ctype for a in names.args] == ["struct task_struct *", "pid_t", "struct linux_binprm *"]
    (probe,) = draft.build(catalog)
    assert probe.fetches == [Fetch("arg2", Arg(name="arg2")),
                             Fetch("arg3_filename", Member(Arg(name="arg3"), ("filename",)))]
    _prog, cp = _compile(probe)
    assert cp.error is None, cp.error
    assert [(f.name, f.display) for f in cp.layout.fields] == [("arg2", "s"), ("arg3_filename", "string"),
                                                               ("arg1_pid", "s")]


@needs_btf
@needs_root
def test_editor_member_picker_expands_an_argument_and_ticks_its_member():
    """Through Textual's pilot: the right arrow on skb lists its members, space ticks skb->len,
    the left arrow folds them; the probe built records skb_len and passes the verifier."""
    from ktui.app import KtuiApp

    async def run():
        from ktui.catalog import Catalog

        app = KtuiApp(probes=[], mode="live", source_factory=None, catalog_loader=Catalog.load)
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause(0.3)
            editor = app.query_one("#editor")
            for _ in range(300):  # the app hands the editor its catalog once loaded
                if editor.catalog is not None:
                    break
                await pilot.pause(0.1)
            assert editor.catalog is not None
            app.action_show_tab("probes")
            await pilot.pause()
            app.query_one("#editor-spec").value = "kprobe:ip_rcv"
            await pilot.pause()
            box = app.query_one("#editor-args")
            values = [box.get_option_at_index(i).value for i in range(box.option_count)]
            assert values == ["skb", "dev", "pt", "orig_dev"]
            box.focus()
            box.highlighted = 0
            await pilot.press("right")
            values = [box.get_option_at_index(i).value for i in range(box.option_count)]
            assert "skb->len" in values and values.index("skb->len") > 0 and values[-3:] == ["dev", "pt", "orig_dev"]
            box.highlighted = values.index("skb->len")
            await pilot.press("space")
            await pilot.press("left")
            assert [box.get_option_at_index(i).value for i in range(box.option_count)] == values[:1] + [
                "dev", "pt", "orig_dev"]
            assert box.highlighted == 0
            probes = app.query_one("#editor").build()
            await pilot.press("q")
            return probes

    (probe,) = asyncio.run(run())
    assert probe.fetches == [Fetch("skb_len", Member(Arg(name="skb"), ("len",)))]
    prog, cp = _compile(probe)
    assert cp.error is None and [f.name for f in cp.layout.fields] == ["skb_len"]
    verify_program(prog)


# --- live on this kernel: a member through a kernel pointer, exactly -------------------------

@needs_btf
@needs_root
@pytest.mark.live
def test_raw_tracepoint_member_filter_gives_exactly_the_execs_of_a_program(tmp_path):
    """rawtracepoint:sched_process_exec(task, old_pid, bprm): bprm->filename (a kernel string
    behind two pointers) filtered in the kernel, and task->pid read through the first argument:
    a script that re-execs itself N times in one process gives exactly N events, each with the
    script's path and the process's own pid."""
    import tempfile
    from pathlib import Path

    n = 6
    short = Path(tempfile.mkdtemp(prefix="km", dir="/tmp"))  # the path fits a 64-byte string fetch
    script = short / "reexec"
    script.write_text('#!/bin/sh\n[ "$1" -gt 1 ] && exec "$0" $(($1 - 1))\nexit 0\n')
    script.chmod(0o755)
    out = tmp_path / "r.ktrec"
    assert main(["record", "-q", "-o", str(out), "rawtracepoint:sched_process_exec",
                 "--filter", f'arg3->filename == "{script}" && arg1->pid > 0', "--", str(script), str(n)]) == 0
    rows = [json.loads(line) for line in subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "ktui", "export", "--format", "jsonl", "-o", "-", str(out)],
        capture_output=True, text=True, check=True).stdout.splitlines()]
    assert len(rows) == n
    assert all(r["arg3_filename"] == str(script) for r in rows)
    assert all(r["arg1_pid"] == r["pid"] for r in rows) and len({r["pid"] for r in rows}) == 1
    script.unlink()
    short.rmdir()


# --- a literal longer than the recorded string: one sentence, the editor and the compiler alike ---

@pytest.mark.parametrize("flt, sentence", [
    ('comm == "sixteen_chars___"', "comm holds at most 15 bytes and the literal has 16, so it can never match"),
    ('comm =~ "sixteen_chars___*"', "comm holds at most 15 bytes and the literal has 16"),
    ('filename != "' + "x" * 64 + '"', "filename holds at most 63 bytes and the literal has 64"),
])
def test_a_literal_longer_than_the_string_is_refused_everywhere(flt, sentence, capsys):
    from ktui.probes.draft import ProbeDraft

    draft = ProbeDraft(spec="tracepoint:syscalls:sys_enter_openat", filter=flt)
    with pytest.raises(ParseError, match=sentence):
        draft.check_filter(draft.names())
    assert main(["compile", "--emit", "none", "--filter", flt, "tracepoint:syscalls:sys_enter_openat"]) == 1
    err = capsys.readouterr().err
    assert sentence in err and "Traceback" not in err
    ok = flt.replace("sixteen_chars___", "fifteen_chars__").replace("x" * 64, "x" * 63)
    assert main(["compile", "--emit", "none", "--filter", ok, "tracepoint:syscalls:sys_enter_openat"]) == 0
