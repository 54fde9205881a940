"""Bounded by design: ftrace text, sessions and input files from outside, at and beyond their limits.

Each hostile input gives one sentence (a KtuiError, or a line the import reports and skips),
in bounded time and memory, and leaves the input unchanged. The commands are run as a person
runs them (subprocess): one or more "ktui: ..." lines on stderr, no traceback, non-zero exit.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ktui.errors import FileFormatError, KtuiError
from ktui.formats.ftrace import (
    MAX_CPUS,
    MAX_EVENT_KINDS,
    MAX_FIELDS,
    MAX_LINE,
    import_ftrace,
    parse_line,
    split_fields,
)
from ktui.inputs import open_input, read_bounded
from ktui.kernel import process_alive
from ktui.numbers import duration_arg, pid_arg
from ktui.recording import RecordingReader
from ktui.session import MAX_SESSION_BYTES, MAX_TOML_DEPTH, Session, toml_depth
from helpers import run_measured

FIX = Path(__file__).parent / "fixtures" / "ftrace"
KTUI = Path(sys.executable).with_name("ktui")
GOOD = "            bash-14636   [001] .....  3522.534653: sys_openat -> 0x3"
MIB = 1024 * 1024


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_ktui(*args: str, timeout: float = 120) -> tuple[int, str, str, float, float]:
    """(exit code, stdout, stderr, seconds, peak RSS in MiB) of one `ktui` run (its own peak: run_measured)."""
    code, out, err, seconds, rss_kib = run_measured([str(KTUI), *args], timeout=timeout)
    return code, out, err, seconds, rss_kib / 1024


def assert_sentences(code: int, stderr: str) -> list[str]:
    lines = stderr.strip().splitlines()
    assert code != 0, stderr
    assert lines and all(line.startswith("ktui: ") for line in lines), stderr
    assert "Traceback" not in stderr
    return lines


# ---------------------------------------------------------------------------
# ftrace lines

@pytest.mark.parametrize("line, problem", [
    ("  bash-1 [999999999] ..... 1.000001: sys_openat -> 0x3", f"CPU 999999999 is more than a kernel has ({MAX_CPUS} at most)"),
    ("  bash-1 [8192] ..... 1.000001: sys_openat -> 0x3", "CPU 8192 is more than a kernel has (8192 at most)"),
    ("  bash-99999999999 [001] ..... 1.000001: sys_openat -> 0x3", "the pid 99999999999 is more than a kernel hands out"),
    ("  bash-1 (99999999999) [001] ..... 1.000001: sys_openat -> 0x3", "the pid 99999999999 is more than a kernel"),
    ("  bash-1 [001] ..... 99999999999999999999.5: sys_openat -> 0x3", "the timestamp 99999999999999999999 s is beyond"),
    ("  bash-1 [001] ..... " + "9" * 5000 + ".5: x: a=1", "the timestamp 99999999999999999999999… s is beyond"),
    ("  bash-1 [001] ..... 1.5: sys_openat -> " + "9" * 5000, "the return value 99999999"),
    ("  bash-1 [٣] ..... 1.5: x: a=1", "not an event line"),
], ids=lambda v: v[:40])
def test_numbers_beyond_what_a_kernel_prints_are_a_problem_line(line, problem):
    got = parse_line(line)
    assert isinstance(got, str) and got.startswith(problem), got


def test_largest_values_a_kernel_prints_are_taken():
    got = parse_line(f"  bash-4194304 (4194304) [{MAX_CPUS - 1}] ..... 18446744073.709551: x: a=1")
    assert not isinstance(got, str)
    assert (got.tid, got.tgid, got.cpu, got.ts) == (4194304, 4194304, MAX_CPUS - 1, 18446744073_709551000)


@pytest.mark.parametrize("line", [
    " " * 100_000 + "word",
    " " * 100_000 + "bash-1 [000] ..... 1.0: x: a=1",
    "bash-1 [000] ..... 1.0: x: a=1" + " " * 100_000 + "b",
    "bash-1 [000] ..... 1.0: x: a=1" + " " * 100_000 + "b=2",
    "bash-1 [000] ..... 1.0: x: " + "a " * 50_000,
    "bash-1 [000] ..... 1.0: x: a=\"" + " " * 100_000,
    "-1" * 50_000,
    "bash" + "-1 " * 30_000 + "[",
    "bash-1 " + " " * 100_000 + "[0]",
], ids=lambda v: v[:20] + str(len(v)))
def test_long_lines_parse_in_linear_time(line):
    start = time.perf_counter()
    parse_line(line)
    split_fields(line)
    assert time.perf_counter() - start < 2.0  # quadratic: minutes


def test_unicode_digits_are_strings_not_numbers(tmp_path):
    """str.isdigit() takes '²'; int('²') does not."""
    text = tmp_path / "t.txt"
    text.write_text("  bash-1 [000] ..... 1.000001: ev: x=² y=12\n  bash-1 [000] ..... 1.000002: ev: x=3 y=٣\n")
    report = import_ftrace(text, tmp_path / "t.ktrec")
    assert report.events == 2 and report.problem_count == 0
    reader = RecordingReader.open(tmp_path / "t.ktrec")
    arr = next(iter(reader.events()))
    assert arr["x"].tolist() == ["²".encode(), b"3"] and arr["y"].tolist() == [b"12", "٣".encode()]


def _ftrace_file(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_huge_cpu_and_header_cpu_count_are_reported_and_bounded(tmp_path):
    src = _ftrace_file(tmp_path / "cpu.txt", [
        "# entries-in-buffer/entries-written: 2/2   #P:999999999",
        "  bash-1 [999999999] ..... 1.000001: ev: a=1",
        "  bash-1 [001] ..... 1.000002: ev: a=2",
    ])
    report = import_ftrace(src, tmp_path / "cpu.ktrec")
    assert report.events == 1 and report.problem_count == 2
    problems = report.problem_lines()
    assert problems[0] == f"{src}:1: the header's #P:999999999 is more CPUs than a kernel has (8192 at most); the CPUs of the events are used"
    assert problems[1].startswith(f"{src}:2: CPU 999999999 is more than a kernel has (8192 at most)")
    reader = RecordingReader.open(tmp_path / "cpu.ktrec")
    assert reader.counters()[0].hits == [0, 1]  # CPUs 0 and 1, not a billion


def test_too_many_event_kinds_is_one_sentence_fast(tmp_path):
    src = _ftrace_file(tmp_path / "kinds.txt",
                       [f"  bash-1 [000] ..... 1.{i:06d}: ev{i}: a=1" for i in range(100_000)])
    start = time.perf_counter()
    with pytest.raises(FileFormatError) as info:
        import_ftrace(src, tmp_path / "kinds.ktrec")
    assert str(info.value) == (f"{src}: holds more than {MAX_EVENT_KINDS:,} kinds of event (line {MAX_EVENT_KINDS + 1} "
                               f"starts one more); ftrace text from a kernel has a few thousand at most")
    assert time.perf_counter() - start < 30
    assert not (tmp_path / "kinds.ktrec").exists()


def test_too_many_fields_are_problem_lines_and_the_counts_agree(tmp_path):
    wide = " ".join(f"k{i}=1" for i in range(MAX_FIELDS + 1))
    src = _ftrace_file(tmp_path / "wide.txt", [
        f"  bash-1 [000] ..... 1.000001: ev: {wide}",
        "  bash-1 [000] ..... 1.000002: ev: " + " ".join(f"a{i}=1" for i in range(MAX_FIELDS)),
        "  bash-1 [000] ..... 1.000003: ev: b=1",  # one field more than the event may have
        "  bash-1 [000] ..... 1.000004: ev: a0=2",
    ])
    report = import_ftrace(src, tmp_path / "wide.ktrec")
    assert report.events == 2 and report.problem_count == 2
    reader = RecordingReader.open(tmp_path / "wide.ktrec")
    assert sum(len(a) for a in reader.events()) == 2
    assert reader.counters()[0].hits == [2]


def test_a_line_longer_than_the_limit_is_skipped_in_bounded_memory(tmp_path):
    src = tmp_path / "long.txt"
    with open(src, "w") as f:
        f.write("  bash-1 [000] ..... 1.000001: ev: a=1\n")
        f.write("  bash-1 [000] ..... 1.000002: ev: a=" + "x" * (3 * MAX_LINE) + "\n")
        f.write("  bash-1 [000] ..... 1.000003: ev: a=3\n")
    report = import_ftrace(src, tmp_path / "long.ktrec")
    assert report.events == 2
    assert report.problem_lines()[0] == f"{src}:2: the line is longer than {MAX_LINE:,} characters"


# ---------------------------------------------------------------------------
# Inputs: regular files only

def test_fifo_and_devices_are_refused_without_hanging(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "a FIFO (named pipe)"), (Path("/dev/zero"), "a character device"),
                       (tmp_path, "a directory")):
        start = time.perf_counter()
        with pytest.raises(FileFormatError) as info:
            open_input(path, what="ftrace text")
        assert str(info.value) == (f"{path}: is {kind}, not a regular file; ftrace text is read from a regular "
                                   f"file only (save a stream to a file first)")
        assert time.perf_counter() - start < 1


def test_size_bound(tmp_path):
    f = tmp_path / "big"
    f.write_bytes(b"x" * 101)
    assert read_bounded(f, what="a thing", max_size=101) == b"x" * 101
    with pytest.raises(FileFormatError, match=r"is 101 bytes; a thing is at most 100 bytes"):
        read_bounded(f, what="a thing", max_size=100)


@pytest.mark.parametrize("argv", [
    ["replay", "{fifo}"], ["export", "{fifo}", "-f", "jsonl", "-o", "{out}"], ["import", "{fifo}", "-o", "{out}"],
    ["--session", "{fifo}"], ["--session", "/dev/zero"], ["export", "/dev/zero", "-f", "perfetto", "-o", "{out}"],
    ["replay", "/dev/zero"],
])
def test_commands_refuse_fifos_and_devices(tmp_path, argv):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    args = [a.format(fifo=fifo, out=tmp_path / "out") for a in argv]
    code, _, err, seconds, _ = run_ktui(*args, timeout=60)
    lines = assert_sentences(code, err)
    assert len(lines) == 1 and "not a regular file" in lines[0], err
    assert seconds < 30
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# Sessions

SESSION_HEAD = 'version = 1\n'


def _deep_fetch(depth: int) -> str:
    expr = '{op = "Reg", name = "di"}'
    for _ in range(depth):
        expr = f'{{op = "Deref", offset = 0, inner = {expr}}}'
    return (SESSION_HEAD + '[[probes]]\nkind = "kprobe"\ntarget = "vfs_read"\n'
            f'fetches = [{{name = "x", expr = {expr}}}]\n')


@pytest.mark.parametrize("text, message", [
    (SESSION_HEAD + "[layout]\na = " + "[" * 20_000 + "]" * 20_000 + "\n",
     f"nests arrays or tables 20000 deep (a session nests at most {MAX_TOML_DEPTH})"),
    (SESSION_HEAD + "[layout]\na = " + "{b = " * 5_000 + "1" + "}" * 5_000 + "\n",
     f"nests arrays or tables 5000 deep (a session nests at most {MAX_TOML_DEPTH})"),
    (_deep_fetch(1500), f"nests arrays or tables 1503 deep (a session nests at most {MAX_TOML_DEPTH})"),
    (_deep_fetch(33), "probes[0].fetches[0]: a fetch expression nests deeper than 32 levels"),
    (SESSION_HEAD + "[layout]\na = " + "9" * 5000 + "\n", "not a session: Exceeds the limit (4300 digits)"),
    (SESSION_HEAD + '[[probes]]\nkind = "profile"\nfrequency = 99999999999\n',
     "probes[0]: frequency 99999999999 is out of range: it must be from 1 to 1000000"),
    (SESSION_HEAD + '[[probes]]\nkind = "kretprobe"\ntarget = "f"\nmaxactive = 5000\n',
     "probes[0]: maxactive 5000 is out of range: it must be from 0 to 4096"),
    (SESSION_HEAD + '[[probes]]\nkind = "kprobe"\ntarget = "f"\nfetches = [{name = "x", expr = {op = "Imm", value = '
     + str(2**63 - 1) + '}}]\n[[probes]]\nkind = "kprobe"\ntarget = "f"\naddress = -1\n',
     "probes[1]: address is out of range"),
], ids=lambda v: v[-40:].replace("\n", " "))
def test_hostile_sessions_are_one_sentence(tmp_path, text, message):
    path = tmp_path / "s.toml"
    path.write_text(text)
    before = _digest(path)
    start = time.perf_counter()
    with pytest.raises(FileFormatError) as info:
        Session.load(path)
    assert message in str(info.value), str(info.value)
    assert "\n" not in str(info.value)
    assert time.perf_counter() - start < 5
    assert _digest(path) == before


def test_session_depth_scan_ignores_brackets_in_strings_and_comments():
    assert toml_depth('a = "[[[[\\"[[[["\nb = \'{{{{\'\nc = """\n[[[[\n"""  # [[[[[\n[t]\nd = [[1]]') == 2
    assert toml_depth("a = [" * 3 + "]" * 3) == 3


def test_session_size_bound(tmp_path):
    path = tmp_path / "big.toml"
    with open(path, "wb") as f:
        f.write(SESSION_HEAD.encode())
        f.truncate(MAX_SESSION_BYTES + 1)
    with pytest.raises(FileFormatError, match=f"is {MAX_SESSION_BYTES + 1:,} bytes; a session file is at most"):
        Session.load(path)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_session_parser_takes_any_text(text):
    try:
        Session.from_toml(text)
    except KtuiError:
        pass


# ---------------------------------------------------------------------------
# ftrace parser: any text, and numbers at and beyond their limits

NUMBERS = st.one_of(st.integers(0, 2**70).map(str), st.sampled_from(["²", "٣", "9" * 25, "9" * 5000, "0x" + "f" * 40]))


@settings(max_examples=300, deadline=None)
@given(NUMBERS, NUMBERS, NUMBERS, NUMBERS, st.sampled_from(["sys_openat -> {v}", "ev: a={v} b={v}",
                                                          "ev: (f+0x0/0x10) a={v}", "sys_x(a: {v})"]))
def test_ftrace_line_numbers_at_and_beyond_limits(pid, cpu, sec, value, body):
    line = f"  comm-{pid} [{cpu}] ..... {sec}.5: " + body.format(v=value)
    start = time.perf_counter()
    got = parse_line(line)
    assert isinstance(got, str) or (got.cpu < MAX_CPUS and got.tid <= 4194304 and got.ts < 2**64)
    assert time.perf_counter() - start < 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_ftrace_parser_takes_any_text(text):
    for line in text.splitlines() or [text]:
        parse_line(line)
        split_fields(line)


# ---------------------------------------------------------------------------
# A corpus of damaged ftrace texts, through the command

def _damaged_texts() -> dict[str, bytes]:
    good = (FIX / "sched_syscalls.txt").read_bytes()
    lines = good.splitlines(keepends=True)
    return {
        # cut inside a line's "comm-pid [cpu]": that line is no event line any more
        "truncated-mid-line": good[: good.index(b"bash-14636", len(good) // 2) + 14],
        "flipped-bytes": bytes(b ^ 0xFF if i % 997 == 3 else b for i, b in enumerate(good)),
        "huge-cpu": good.replace(b"[001]", b"[999999999]", 3),
        "huge-header-cpus": good.replace(b"#P:2", b"#P:999999999"),
        "huge-pid": good.replace(b"bash-14636", b"bash-99999999999", 2),
        "huge-timestamp": good.replace(b"3522.534653", b"99999999999999999999.5"),
        "unicode-digits": good.replace(b"0x3", "²".encode(), 2),
        "many-spaces": b"".join(lines[:20]) + b" " * 100_000 + b"word\n" + b"".join(lines[20:]),
        "5000-digit-number": good.replace(b"0x3", b"9" * 5000, 1),
        "nul-bytes": good.replace(b"sys_openat", b"sys_\x00penat", 5),
    }


@pytest.mark.parametrize("name", sorted(_damaged_texts()))
def test_damaged_ftrace_corpus_through_import(tmp_path, name):
    src = tmp_path / f"{name}.txt"
    src.write_bytes(_damaged_texts()[name])
    before = _digest(src)
    code, out, err, seconds, rss = run_ktui("import", str(src), "-o", str(tmp_path / "out.ktrec"))
    assert_sentences(code, err)
    assert seconds < 60 and rss < 400, (seconds, rss)
    assert _digest(src) == before
    if code == 4 and (tmp_path / "out.ktrec").exists():  # lines skipped, the rest kept
        assert "line(s) not imported" in out


@pytest.mark.parametrize("name", ["huge-cpu", "huge-header-cpus", "many-spaces"])
def test_damaged_ftrace_corpus_through_export(tmp_path, name):
    src = tmp_path / f"{name}.txt"
    src.write_bytes(_damaged_texts()[name])
    before = _digest(src)
    code, _, err, seconds, rss = run_ktui("export", str(src), "-f", "perfetto", "-o", str(tmp_path / "out.json"))
    lines = err.strip().splitlines()  # the skipped lines, named (the exit code is the export's damage rule)
    assert lines and all(line.startswith("ktui: ") for line in lines) and "Traceback" not in err, err
    assert seconds < 60 and rss < 400, (seconds, rss)
    assert _digest(src) == before


# ---------------------------------------------------------------------------
# Options

@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "-1", "0", "1e999", "1e12", "x", "", "9" * 5000])
def test_duration_refuses_what_never_ends(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="is not a duration: give a positive number of seconds"):
        duration_arg(text)


def test_duration_takes_seconds():
    assert duration_arg("0.5") == 0.5 and duration_arg("3600") == 3600.0


@pytest.mark.parametrize("text", ["99999999999", "0", "-1", "4194305", "9" * 5000, "x"])
def test_pid_option_refuses_what_is_no_pid(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        pid_arg(text)


@pytest.mark.parametrize("pid", [99999999999, 2**64, -1, 0, 4194305])
def test_process_alive_of_an_impossible_pid_is_false(pid):
    assert process_alive(pid) is False


@pytest.mark.parametrize("argv, message", [
    (["record", "tracepoint:syscalls:sys_enter_getppid", "-o", "{out}", "--duration", "nan"], "is not a duration"),
    (["record", "tracepoint:syscalls:sys_enter_getppid", "-o", "{out}", "-d", "inf"], "is not a duration"),
    (["record", "tracepoint:syscalls:sys_enter_getppid", "-o", "{out}", "-d", "-5"], "is not a duration"),
    (["record", "tracepoint:syscalls:sys_enter_getppid", "-o", "{out}", "-p", "99999999999"], "is out of range"),
    (["export", str(FIX / "mixed.txt"), "-f", "jsonl", "-o", "{out}", "--pid", "99999999999"], "is out of range"),
])
def test_options_are_validated_by_the_command(tmp_path, argv, message):
    args = [a.format(out=tmp_path / "out") for a in argv]
    code, _, err, _, _ = run_ktui(*args)
    assert code == 2 and "Traceback" not in err and message in err, err
    assert err.strip().splitlines()[-1].startswith("ktui ")  # argparse: usage, then "ktui record: error: ..."
    assert not (tmp_path / "out").exists()
