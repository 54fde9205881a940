"""Issue 8: kprobes through ktui's own code paths (spec parser, compiler, engine,
recorder, doctor) on a kernel that has them. Runs inside the VM only.

Every count is exact where the truth is exact: the VM has no network but loopback
and nothing else running, and each test also keys its events to what it alone did
(a packet size, a file name, its own pid).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from kernel_live import tcp_connections, trace, udp_datagrams

HERE = Path(__file__).resolve().parent


def _probe(spec: str):
    from ktui.probes.spec import parse_spec

    probes = parse_spec(spec)
    assert len(probes) == 1, probes
    return probes[0]


def _totals(traced, probe_id: int = 0) -> dict[str, int]:
    return traced.counters[probe_id].totals()


# --- ip_rcv: each call -----------------------------------------------------------


def test_kprobe_ip_rcv_reports_each_loopback_packet():
    from ktui.probes.model import Arg, Fetch, Member

    n, payload = 200, 1234
    probe = _probe("kprobe:ip_rcv")
    probe.fetches = [Fetch("len", Member(Arg(name="skb"), ("len",)))]
    traced = trace([probe], lambda: udp_datagrams(n, payload))
    assert traced.result == n
    events = traced.of(0)
    ip_len = payload + 8 + 20  # skb->len at ip_rcv: IPv4 header + UDP header + payload
    ours = events[events["len"] == ip_len]
    assert len(ours) == n
    totals = _totals(traced)
    assert totals["dropped"] == 0
    assert totals["hits"] == totals["delivered"] + totals["dropped"] + totals["filtered"] == len(events)


def test_ktui_record_kprobe_ip_rcv_to_a_recording(ktui_bin, tmp_path):
    """The headless path: `ktui record` writes a recording, RecordingReader reads it back."""
    from ktui.recording.reader import RecordingReader

    n = 50
    out = tmp_path / "ip_rcv.ktrec"
    sender = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); "
        f"from kernel_live import udp_datagrams; assert udp_datagrams({n}, 999) == {n}"
    )
    result = subprocess.run(
        [ktui_bin, "record", "kprobe:ip_rcv", "-o", str(out), "--", sys.executable, "-c", sender],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert (out.stat().st_mode & 0o777) == 0o600
    with RecordingReader.open(out) as reader:
        assert [p.spec for p in reader.probe_states()] == ["kprobe:ip_rcv"]
        assert reader.count() == n  # loopback only, nothing else running: every packet is ours
        totals = reader.counters()[0].totals()
        assert totals["hits"] == n and totals["dropped"] == 0


# --- kernel_clone: arguments by name from BTF ----------------------------------------


def test_kernel_clone_args_by_name_from_btf():
    from ktui.probes.model import Arg, Fetch, Member

    probe = _probe("kprobe:kernel_clone")
    args = Arg(name="args")
    probe.fetches = [
        Fetch("clone_flags", Member(args, ("flags",))),
        Fetch("exit_signal", Member(args, ("exit_signal",))),
    ]

    def fork_once() -> int:
        child = os.fork()  # glibc: clone(CLONE_CHILD_SETTID|CLONE_CHILD_CLEARTID|SIGCHLD)
        if child == 0:
            os._exit(0)
        os.waitpid(child, 0)
        return child

    traced = trace([probe], fork_once)
    events = traced.of(0)
    mine = events[events["pid"] == os.getpid()]
    clone_thread = 0x00010000
    # The engine's own threads start after attaching: clones with CLONE_THREAD and no exit signal.
    threads = mine[(mine["clone_flags"] & clone_thread) != 0]
    assert (threads["exit_signal"] == 0).all()
    forks = mine[(mine["clone_flags"] & clone_thread) == 0]
    assert len(forks) == 1, mine
    assert int(forks["exit_signal"][0]) == signal.SIGCHLD
    clone_child_settid, clone_child_cleartid = 0x01000000, 0x00200000
    flags = int(forks["clone_flags"][0])
    assert flags & clone_child_settid and flags & clone_child_cleartid, hex(flags)
    assert flags & 0xFF == 0  # the exit signal is split out of the flags into its own member


def _list_json(ktui_bin: str, pattern: str) -> list[dict]:
    result = subprocess.run([ktui_bin, "list", "--json", "-v", pattern],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]  # JSON Lines


def test_catalog_knows_kernel_clone_from_btf_and_what_kprobes_refuse(ktui_bin):
    """The catalog on a kernel with kprobes: BTF prototypes, and the kernel's own blacklist."""
    [entry] = _list_json(ktui_bin, "kprobe:kernel_clone")
    assert entry["traceability"] == "traceable", entry
    assert entry["args"] == [{"name": "args", "ctype": "struct kernel_clone_args *"}]
    blacklist = Path("/sys/kernel/debug/kprobes/blacklist").read_text().split()
    # Lines are "0xSTART-0xEND\tsymbol"; take a plain symbol that kallsyms also lists once.
    kallsyms = Path("/proc/kallsyms").read_text().split()
    refused = next(s for s in blacklist[1::2] if re.fullmatch(r"[a-z_][a-z0-9_]*", s) and kallsyms.count(s) == 1)
    [entry] = _list_json(ktui_bin, f"kprobe:{refused}")
    assert entry["traceability"] == "blacklisted", entry


# --- do_sys_openat2: a kretprobe with a filter and an entry fetch ---------------------------


def test_kretprobe_open_reports_only_failures_with_the_name_fetched_at_entry():
    from ktui.probes.model import Arg, Fetch, Retval, ValueType

    missing = f"/nonexistent-ktui/{uuid.uuid4().hex}"
    probe = _probe("kretprobe:do_sys_openat2")
    probe.fetches = [
        Fetch("ret", Retval(), ValueType("s", 64)),
        Fetch("filename", Arg(name="filename"), ValueType("ustring")),
    ]
    probe.filter = "retval < 0"

    def open_missing_then_existing() -> None:
        with pytest.raises(FileNotFoundError):
            open(missing)
        with open("/proc/self/stat"):  # succeeds: must be filtered out
            pass

    traced = trace([probe], open_missing_then_existing)
    events = traced.of(0)
    assert (events["ret"] < 0).all(), events["ret"]
    names = [bytes(v).split(b"\0")[0].decode() for v in events["filename"]]
    hits = [i for i, name in enumerate(names) if name == missing]
    assert len(hits) == 1, names
    assert int(events["ret"][hits[0]]) == -2  # ENOENT
    totals = _totals(traced)
    assert totals["filtered"] >= 1  # the successful open was seen and filtered in the kernel
    assert totals["hits"] == totals["delivered"] + totals["dropped"] + totals["filtered"]
    assert traced.counters[0].missed == 0


# --- schedule: kernel stacks and a per-CPU count with its rate -------------------------------


def _sched_counts() -> list[int]:
    """Per-CPU calls of __schedule() as the scheduler counts them (/proc/schedstat's sched_count)."""
    rows = [line.split() for line in Path("/proc/schedstat").read_text().splitlines() if line.startswith("cpu")]
    return [int(row[3]) for row in rows]


def test_schedule_stacks_resolve_and_per_cpu_count_has_a_rate():
    from ktui.probes.model import Action, ActionKind
    from ktui.kernel import possible_cpus

    probe = _probe("kprobe:schedule")
    probe.actions = [Action(ActionKind.STACKS), Action(ActionKind.COUNT, key=("cpu",))]
    sleeps = 100

    def sleep_often() -> None:
        for _ in range(sleeps):
            time.sleep(0.001)  # each sleep calls schedule() in this thread

    # The scheduler's own per-CPU count bounds ktui's: every schedule() enters __schedule(),
    # which also runs from preemption and idle without schedule().
    Path("/proc/sys/kernel/sched_schedstats").write_text("1")
    before = _sched_counts()
    traced = trace([probe], sleep_often, settle_s=1.0)
    after = _sched_counts()
    counters = traced.counters[0]
    assert len(counters.hits) == possible_cpus() == len(before)
    for cpu, hits in enumerate(counters.hits):
        assert hits <= after[cpu] - before[cpu], (cpu, hits, before, after)
    total = sum(counters.hits)
    assert total >= sleeps
    assert traced.elapsed_s > 0
    rate = total / traced.elapsed_s  # calls per second over the run, as the panes show it
    assert rate > 0

    kallsyms = {line.split()[2] for line in Path("/proc/kallsyms").read_text().splitlines()}
    assert traced.stacks, "no stacks were aggregated"
    frames = [_symbol(f) for s in traced.stacks for f in s.kernel]
    unnamed = [f for f in frames if f not in kallsyms]
    assert not unnamed, unnamed[:10]
    assert any(f in ("do_nanosleep", "hrtimer_nanosleep") for f in frames), traced.stacks[:3]


def _symbol(frame: str) -> str:
    """'p9_client_read [9pnet]' or 'do_nanosleep+0x5a' -> the kallsyms name."""
    return frame.split(" [", 1)[0].split("+", 1)[0]


# --- the kprobe_events line: ktui against the kernel's own tracer ----------------------------

KPROBE_EVENTS_LINE = (
    "p:myprobe tcp_select_initial_window sk=+0(%di):x64 space=%si:s32 mss=%dx:u32 "
    "rcv_wnd=+0(%cx):u32 window_clamp=+0(%r8):u32 wscale_ok=%r9:s32 "
    "rsv_wscale=+0(+0(%sp)):u8 init_rcv_wnd=+4(%sp):u32"
)
FIELDS = ("sk", "space", "mss", "rcv_wnd", "window_clamp", "wscale_ok", "rsv_wscale", "init_rcv_wnd")


def _append_kprobe_event(tracefs: Path, line: str) -> None:
    # Not open(..., "a"): Python seeks to the end on opening, which tracefs refuses (EINVAL).
    fd = os.open(tracefs / "kprobe_events", os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, (line + "\n").encode())
    except OSError as err:
        log = (tracefs / "error_log").read_text() if (tracefs / "error_log").exists() else ""
        raise AssertionError(f"the kernel refused {line!r}: {err}\n{log}") from None
    finally:
        os.close(fd)


def _kernel_tracer(tracefs: Path):
    """The same line in the kernel's own kprobe_events, enabled."""
    (tracefs / "tracing_on").write_text("0")
    (tracefs / "trace").write_text("")
    _append_kprobe_event(tracefs, KPROBE_EVENTS_LINE)
    (tracefs / "events/kprobes/myprobe/enable").write_text("1")
    (tracefs / "tracing_on").write_text("1")


def _remove_kernel_tracer(tracefs: Path) -> None:
    (tracefs / "tracing_on").write_text("0")
    enable = tracefs / "events/kprobes/myprobe/enable"
    if enable.exists():
        enable.write_text("0")
    if "myprobe" in (tracefs / "kprobe_events").read_text():
        _append_kprobe_event(tracefs, "-:myprobe")


def test_kprobe_events_line_matches_the_kernels_own_tracer(tracefs):
    probe = _probe(KPROBE_EVENTS_LINE)
    assert [f.name for f in probe.fetches] == list(FIELDS)
    _kernel_tracer(tracefs)
    try:
        traced = trace([probe], lambda: tcp_connections(3))
        (tracefs / "tracing_on").write_text("0")
        lines = [line for line in (tracefs / "trace").read_text().splitlines() if "myprobe:" in line]
    finally:
        _remove_kernel_tracer(tracefs)

    kernel_rows = []
    for line in lines:
        values = dict(re.findall(r"(\w+)=(\S+)", line.split("myprobe:", 1)[1]))
        kernel_rows.append(tuple(int(values[name], 0) for name in FIELDS))
    events = traced.of(0)
    ktui_rows = [tuple(int(e[name]) for name in FIELDS) for e in events]
    # Client connect and server SYN-ACK each choose a window: two calls per connection.
    assert len(kernel_rows) == 6, lines
    assert sorted(ktui_rows) == sorted(kernel_rows)


# --- ktui doctor -----------------------------------------------------------------------------


def test_doctor_says_kprobes_yes_with_evidence(ktui_bin):
    result = subprocess.run([ktui_bin, "doctor", "--json"], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for key in ("kprobe", "kretprobe"):
        assert report[key]["ok"] is True, report[key]
        assert report[key]["why"].strip()
    assert report["btf"]["ok"] is True
    assert "kprobe" in json.dumps(report["kprobe"]).lower()


def test_compile_check_loads_kprobe_programs(ktui_bin):
    result = subprocess.run(
        [ktui_bin, "compile", "--check", "kprobe:ip_rcv", "kretprobe:do_sys_openat2", KPROBE_EVENTS_LINE],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr


# --- kill -9 leaves nothing behind -------------------------------------------------------------

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"


def _kernel_probe_lists(tracefs: Path) -> dict[str, str]:
    lists = {
        "kprobe_events": (tracefs / "kprobe_events").read_text(),
        "uprobe_events": (tracefs / "uprobe_events").read_text(),
    }
    registered = Path("/sys/kernel/debug/kprobes/list")
    if registered.exists():  # every kprobe, including those made through the perf PMU
        lists["kprobes/list"] = "\n".join(line for line in registered.read_text().splitlines() if "ip_rcv" in line)
    return lists


def _perf_probes_of(pid: int) -> list[dict]:
    out = subprocess.run(["bpftool", "perf", "show", "--json"], capture_output=True, text=True, check=True).stdout
    return [p for p in json.loads(out or "[]") if p.get("pid") == pid]


@pytest.mark.parametrize("how", ["engine", "ktui record"])
def test_kill_9_leaves_no_probe_behind(tracefs, ktui_bin, tmp_path, how):
    before = _kernel_probe_lists(tracefs)
    specs = ["kprobe:ip_rcv", f"uprobe:{LIBC}:getpid"]
    if how == "engine":
        cmd = [sys.executable, str(HERE / "hold_probes.py"), *specs]
    else:
        cmd = [ktui_bin, "record", *specs, "-o", str(tmp_path / "held.ktrec"), "--duration", "600"]
    holder = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            kinds = {p.get("fd_type") for p in _perf_probes_of(holder.pid)}
            if {"kprobe", "uprobe"} <= kinds:
                break
            assert holder.poll() is None, holder.stderr.read()
            time.sleep(0.5)
        else:
            pytest.fail(f"{how} did not attach a kprobe and a uprobe within 180 s")
        held = _kernel_probe_lists(tracefs)
        if "kprobes/list" in held:
            assert "ip_rcv" in held["kprobes/list"]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    after = _kernel_probe_lists(tracefs)
    assert after == before
    assert _perf_probes_of(holder.pid) == []
