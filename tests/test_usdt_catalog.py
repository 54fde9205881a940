"""USDT markers from .note.stapsdt: decoding, listing, and bpftrace's listing as the reference."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from ktui.catalog.usdt import find_marker, parse_arg_spec, process_entries, read_markers
from ktui.compiler.sites import PT_REGS
from ktui.errors import FileFormatError

PYTHON = "/usr/bin/python3.11"
needs_python = pytest.mark.skipif(not os.path.exists(PYTHON), reason="needs Debian's python3.11 with SDT markers")


def _ktui(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ktui", *args], capture_output=True, text=True, timeout=120)


def test_arg_specs_decode_to_registers_memory_and_immediates():
    a = parse_arg_spec("-4@%eax")
    assert (a.kind, a.reg, a.size, a.signed) == ("reg", "ax", 4, True)
    a = parse_arg_spec("8@%r12")
    assert (a.kind, a.reg, a.size, a.signed) == ("reg", "r12", 8, False)
    a = parse_arg_spec("-4@112(%rsp)")
    assert (a.kind, a.reg, a.offset, a.size, a.signed) == ("mem", "sp", 112, 4, True)
    a = parse_arg_spec("8@-0x10(%rbp,%rax,8)")
    assert (a.kind, a.reg, a.index, a.scale, a.offset) == ("mem", "bp", "ax", 8, -16)
    a = parse_arg_spec("2@$-5")
    assert (a.kind, a.offset, a.size) == ("imm", -5, 2)
    for bad in ("8@foo(%rip)", "3@%eax", "8@%xyz", "8@(%rax", "8@%eax;system()", ""):
        a = parse_arg_spec(bad)
        assert a.kind == "unsupported" and a.error, bad


@settings(deadline=None)
@given(st.text(max_size=40))
def test_arg_spec_parser_never_raises_and_keeps_registers_in_the_table(text):
    a = parse_arg_spec(text)
    if a.kind in ("reg", "mem"):
        assert a.reg in PT_REGS and (not a.index or a.index in PT_REGS)


@needs_python
def test_python_markers_decoded_as_readelf_shows_them():
    markers = {m.name: m for m in read_markers(PYTHON)}
    out = subprocess.run(["readelf", "-n", PYTHON], capture_output=True, text=True).stdout
    for name, m in markers.items():
        assert f"Name: {name}" in out
        assert f"Location: 0x{m.pc:016x}" in out
        assert f"Semaphore: 0x{m.semaphore:016x}" in out
        assert f"Arguments: {m.arg_text}" in out
    entry = markers["function__entry"]
    assert [a.kind for a in entry.args] == ["reg", "reg", "reg"]
    assert [(a.size, a.signed) for a in entry.args] == [(8, False), (8, False), (4, True)]
    # The semaphore's file offset: what the kernel's uprobe ref_ctr_offset takes.
    with open(PYTHON, "rb") as f:
        f.seek(entry.semaphore_offset)
        assert f.read(2) == b"\0\0"  # semaphores start at zero in the file
    assert find_marker(PYTHON, "python", "function__entry") == entry
    assert find_marker(PYTHON, None, "function__entry") == entry


@needs_python
def test_missing_markers_are_one_sentence():
    with pytest.raises(FileFormatError, match=r"has no USDT marker python:nosuch \(its markers: python:audit"):
        find_marker(PYTHON, "python", "nosuch")
    with pytest.raises(FileFormatError, match="no USDT markers"):
        find_marker("/bin/true", None, "x")
    with pytest.raises(FileFormatError, match="not an ELF file"):
        read_markers("/etc/hostname")


@needs_python
@pytest.mark.skipif(shutil.which("bpftrace") is None, reason="needs bpftrace for the reference listing")
def test_listing_matches_bpftrace():
    ours = _ktui("list", f"usdt:{PYTHON}:*")
    theirs = subprocess.run(["bpftrace", "-l", f"usdt:{PYTHON}:*"], capture_output=True, text=True, timeout=120)
    assert ours.returncode == 0, ours.stderr
    assert theirs.returncode == 0, theirs.stderr
    assert ours.stdout.splitlines() == theirs.stdout.splitlines()
    assert len(ours.stdout.splitlines()) >= 8


@needs_python
def test_verbose_listing_names_and_types_the_arguments():
    out = _ktui("list", "-v", f"usdt:{PYTHON}:python:function__entry")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"usdt:{PYTHON}:python:function__entry"
    assert lines[1:4] == ["    const char * filename", "    const char * funcname", "    int lineno"]
    assert "8@%rbp 8@%r12 -4@%eax" in lines[4] and "semaphore" in lines[4]


@needs_python
def test_markers_of_a_running_process():
    child = subprocess.Popen([PYTHON, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"  # exec'd: its maps are its own
        names = [e.name for e in process_entries(child.pid)]
        assert f"usdt:{PYTHON}:python:function__entry" in names
        out = _ktui("list", "-p", str(child.pid), "usdt:*function__*")
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [f"usdt:{PYTHON}:python:function__entry",
                                           f"usdt:{PYTHON}:python:function__return"]
    finally:
        child.stdin.close()
        child.wait()


def test_bad_usdt_listings_are_one_sentence():
    for args, want in ((["list", "usdt:*"], "give the path"),
                       (["list", "usdt:/etc/hostname:*"], "not an ELF file"),
                       (["list", "usdt:/nonexistent/x:*"], "does not exist"),
                       (["list", "-p", "0", "usdt:*"], "process id above 0")):
        out = _ktui(*args)
        assert out.returncode != 0
        assert want in out.stderr and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


def test_the_kernel_catalog_lists_perf_events_for_the_browser():
    from ktui.catalog import Catalog
    from ktui.perfopen import hardware_event_status
    from ktui.probes.perf_events import EVENTS

    cat = Catalog.load()
    names = [e.name for e in cat.search("software:*")] + [e.name for e in cat.search("h:*")]
    assert sorted(names) == sorted(f"{ev.kind}:{ev.name}" for ev in EVENTS)
    e = cat.lookup("software:page-faults")
    assert e.kind == "software" and e.symbol == "page-faults" and e.traceability == "traceable"
    assert "page faults" in e.args_note
    for ev in EVENTS:
        if ev.kind == "hardware":
            ok, why = hardware_event_status(ev.config)
            h = cat.lookup(f"hardware:{ev.name}")
            assert (h.traceability == "traceable") is ok
            assert ok or why in h.traceability_reason
    # An entry's name is a spec the editor can parse as it is.
    from ktui.probes.spec import parse_spec

    (p,) = parse_spec(e.name)
    assert (p.spec, p.period) == ("software:page-faults:100", 100)
