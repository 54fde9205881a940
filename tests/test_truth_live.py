"""Wrong results a newcomer found (NEWCOMER.md), each checked on this machine's real kernel:
signed histograms keep their negative values apart (F9); a recording started from the app holds
the aggregates of its own interval only (F12); a sampled CPU busy in user mode shows what it ran,
never "idle" (F5)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import getppid_child, read_dir_binary, user_spin_binary
from ktui.probes.model import Action, ActionKind, Arg, Fetch, Probe, ProbeKind, stacks_action
from ktui.probes.spec import parse_spec
from ktui.recording import RecordingReader
from ktui.recording.window import window_aggregates
from ktui.session import Session
from ktui.sources.live import LiveSource

pytestmark = pytest.mark.live

EISDIR_READS = 2_000


def _record(tmp_path: Path, probes, command: list[str], name: str = "rec.ktrec") -> Path:
    session, out = tmp_path / f"{name}.toml", tmp_path / name
    Session(probes=probes).save(session)
    proc = subprocess.run([sys.executable, "-m", "ktui", "record", "-q", "--session", str(session), "-o", str(out),
                           "--", *command], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return out


def test_a_signed_histogram_counts_error_returns_apart_from_small_reads(tmp_path):
    """F9: N read()s of a directory return -EISDIR (-21): exactly N in [-32, -16), none in [0, 2)
    from them, in the live histogram (as recorded) and in replay's recomputed window alike."""
    probe = parse_spec("tracepoint:syscalls:sys_exit_read")[0]
    probe.fetches = [Fetch("ret", Arg(name="ret"))]
    probe.actions = [Action(), Action(ActionKind.HIST, value="ret")]
    out = _record(tmp_path, [probe], [str(read_dir_binary()), str(EISDIR_READS)])
    with RecordingReader.open(out) as r:
        rets = [int(v) for a in r.events(probe_ids=[0]) for v in a["ret"]]
        assert rets.count(-21) == EISDIR_READS and min(rets) == -21  # the child's own reads, as streamed
        small = sum(1 for v in rets if 0 <= v < 2)
        [live] = r.histograms()
        replayed = window_aggregates(r, r.first_ts, r.last_ts + 1).histograms
    negative = [(lo, hi, n) for lo, hi, n in live.buckets if lo < 0]
    assert negative == [(-32, -16, EISDIR_READS)]
    assert sum(n for lo, hi, n in live.buckets if (lo, hi) == (0, 2)) == small
    assert sum(n for _, _, n in live.buckets) == len(rets)
    assert [h.buckets for h in replayed] == [live.buckets]


def _wait(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_a_recording_from_the_app_holds_only_what_happened_while_it_ran(tmp_path):
    """F12: stacks, histograms and COUNT tables in a recording started while tracing ran (ctrl+r) cover
    the recording, not the session: stack samples == the profile's hits recorded, key counts == events."""
    n = 3000
    profile = Probe(ProbeKind.PROFILE, "", frequency=49, actions=[Action(ActionKind.STACKS, kernel_stack=True)])
    getppid = parse_spec("tracepoint:syscalls:sys_enter_getppid")[0]
    getppid.actions = [Action(ActionKind.COUNT, key=("pid",)), Action(ActionKind.HIST, value="tid")]
    openat = parse_spec("tracepoint:syscalls:sys_enter_openat")[0]
    openat.actions = [Action(), Action(ActionKind.COUNT, key=("cpu",))]
    no_kprobes = Probe(ProbeKind.KPROBE, "tcp_select_initial_window", name="myprobe")  # fails here: no kprobes
    updates: list = []
    source = LiveSource([profile, getppid, openat, no_kprobes])
    path = tmp_path / "from-app.ktrec"
    source.start(updates.append)
    try:
        before = getppid_child(n)
        assert _wait(lambda: any(sum(s.count for s in u.stacks if s.probe_id == 0) > 20 for u in updates[-1:])
                     and any(k.probe_id == 1 and (before,) in dict(k.rows) for u in updates[-1:] for k in u.counts))
        source.start_recording(str(path))
        during = getppid_child(n)
        time.sleep(1.0)
        source.stop_recording()
        after = getppid_child(n)
    finally:
        source.stop()
    with RecordingReader.open(path) as r:
        counters = r.counters()
        stacks = [s for s in r.stacks() if s.probe_id == 0]
        counts = {k.probe_id: dict(k.rows) for k in r.key_counts()}
        [hist] = [h for h in r.histograms() if h.probe_id == 1]
        opens = sum(len(a) for a in r.events(probe_ids=[2]))
        states = {p.probe_id: p for p in r.probe_states()}
    samples = sum(counters[0].delivered)
    assert samples > 0 and sum(s.count for s in stacks) == samples
    assert counts[1][(during,)] == n and (before,) not in counts[1] and (after,) not in counts[1]
    calls = sum(counters[1].hits) - sum(counters[1].filtered)
    assert sum(counts[1].values()) == calls == sum(c for _, _, c in hist.buckets)
    assert sum(counts[2].values()) == sum(counters[2].hits) - sum(counters[2].filtered)
    assert opens == sum(counters[2].delivered)
    # the probe that failed to attach has its name and its state (why), not an empty counters row
    assert (states[3].name, states[3].status) == ("myprobe", "failed") and states[3].reason
    assert sum(counters[3].hits) == 0


def _spin_samples(probe: Probe, ms: int = 1500) -> list:
    """The stacks of ``probe`` (a profile probe alone) while a child spins in user mode for ``ms``."""
    updates: list = []
    source = LiveSource([probe])
    source.start(updates.append)
    try:
        child = subprocess.Popen([str(user_spin_binary()), str(ms)])
        child.wait(timeout=60)
        time.sleep(0.8)  # the stack map is read twice a second
    finally:
        source.stop()
    return updates[-1].stacks


def test_a_profile_probe_takes_user_stacks_by_default_and_shows_user_mode_samples():
    """F5: the default session's profile probe (and the editor's) takes user stacks: a child spinning
    in user mode shows its own function in the stacks aggregate, not "(no stack)"."""
    from ktui.app_main import default_probes
    from ktui.probes.draft import ProbeDraft

    [profile] = [p for p in default_probes() if p.kind is ProbeKind.PROFILE]
    [edited] = ProbeDraft(spec="profile:hz:99", stream=False, count=False, stacks=True).build()
    assert [a for a in profile.actions if a.kind is ActionKind.STACKS] == [stacks_action(ProbeKind.PROFILE)]
    assert [a.user_stack for a in edited.actions if a.kind is ActionKind.STACKS] == [True]
    stacks = _spin_samples(profile)
    spun = sum(s.count for s in stacks if "ktui_spin" in s.user)
    assert spun >= 10, [(s.kernel[:1], s.user[:2], s.count) for s in stacks[:10]]
    assert all(s.kernel or s.user for s in stacks)  # every sample says what it was


def test_user_mode_samples_without_user_stacks_are_labelled_as_such_not_idle():
    """F5: a probe saved with kernel stacks only: a user-mode sample is labelled user mode."""
    probe = Probe(ProbeKind.PROFILE, "", frequency=99, actions=[Action(ActionKind.STACKS, kernel_stack=True)])
    stacks = _spin_samples(probe)
    user_mode = sum(s.count for s in stacks if s.kernel == ("[user mode: user stacks not taken]",))
    assert user_mode >= 10, [(s.kernel[:1], s.count) for s in stacks[:10]]
    assert not any("idle" in f for s in stacks for f in s.kernel[:1] if f.startswith("["))


def test_record_a_command_follows_the_processes_it_starts(tmp_path):
    """F16: `ktui record SPEC -o F -- sh -c 'loop of cat'`: every cat the shell starts is traced (the
    command's cgroup), exactly 100 opens of the file, and nothing of other processes."""
    out = tmp_path / "children.ktrec"
    loop = "for i in $(seq 100); do cat /etc/hostname >/dev/null; done"
    proc = subprocess.run([sys.executable, "-m", "ktui", "record", "-q", "tracepoint:syscalls:sys_enter_openat",
                           "-o", str(out), "--", "sh", "-c", loop], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    with RecordingReader.open(out) as r:
        events = [a for a in r.events(probe_ids=[0])]
        target = r.meta.get("target_pid")
    rows = [(bytes(e["comm"]).split(b"\0")[0], bytes(e["filename"]).split(b"\0")[0], int(e["pid"]))
            for a in events for e in a]
    opens = [row for row in rows if row[1] == b"/etc/hostname"]
    assert len(opens) == 100 and {c for c, _, _ in opens} == {b"cat"}
    assert len({pid for _, _, pid in opens}) == 100  # a hundred processes, none of them the shell
    assert {c for c, _, _ in rows} <= {b"sh", b"seq", b"cat"} and target not in {pid for _, _, pid in opens}
    from ktui.engine.cgroup import cgroup2_root

    assert cgroup2_root() is not None and not list(Path(cgroup2_root() or "/").glob(f"ktui-*-{target}"))  # gone
