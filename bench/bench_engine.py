#!/usr/bin/env python3
"""Engine benchmark: each figure against a baseline measured in the same run, on this machine.

    .venv/bin/python bench/bench_engine.py [--seconds 3] [--long] [--only throughput,overhead,rss,startup]

1. Throughput: events/s that `ktui record` delivers *and writes to disk* under one
   getppid producer (goal: zero drops) and under one producer per core (the highest
   rate, drops counted), against a bare BCC ring-buffer consumer whose Python
   callback only counts, under the same load. Goal: ratio >= 2.0.
2. Overhead: the producers' call rate under a ktui count-only probe (a COUNT action by
   nothing, which compiles to the probe's per-CPU hits counter alone: one control lookup
   and one per-CPU increment, no header, no comm) against the same under
   `bpftrace -e 'tracepoint:syscalls:sys_enter_getppid { @ = count(); }'`, in
   rounds whose order alternates; the median ratio over --repeat rounds. Goal: ratio >= 0.95.
3. Memory: peak RSS of `ktui record` at the highest rate (10 s; --long: 60 s). Goal < 300 MB.
4. Start-up: time from launching `ktui record` with 10 probes to its first event. Goal < 1.5 s.

Needs root, BCC, gcc and (for 2) bpftrace. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import ctypes as ct
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GETPPID = "tracepoint:syscalls:sys_enter_getppid"
NCPU = os.cpu_count() or 1


# ---------------------------------------------------------------- load generator

def build_loadgen(tmp: Path) -> str:
    out = tmp / "loadgen"
    subprocess.run(["gcc", "-O2", "-pthread", "-o", str(out), str(ROOT / "bench" / "loadgen.c")], check=True)
    return str(out)


def load_argv(loadgen: str, producers: int, seconds: float) -> list[str]:
    return [loadgen, str(seconds), "0", str(producers)]


def parse_load(out: str) -> dict:
    calls, secs, rate = out.split()[-3:]
    return {"calls": int(calls), "rate": float(rate), "seconds": float(secs)}


def run_load(loadgen: str, producers: int, seconds: float, on_start=None) -> dict:
    """One loadgen process with `producers` threads (one thread group) for `seconds`."""
    proc = subprocess.Popen(load_argv(loadgen, producers, seconds), stdout=subprocess.PIPE, text=True)
    if on_start is not None:
        on_start(proc.pid)
    out, _ = proc.communicate()
    return parse_load(out)


# ---------------------------------------------------------------- baselines

BARE_PROGRAM = r"""
struct rec { u64 ts; u32 probe; u32 cpu; u32 pid; u32 tid; u32 uid; s32 kstack; s32 ustack; u32 flags; char comm[16]; };
BPF_RINGBUF_OUTPUT(ring, PAGES);
BPF_PERCPU_ARRAY(counts, u64, 2);  /* 0 hits, 1 dropped */
BPF_ARRAY(target, u32, 1);  /* the load generator's tgid: other processes' getppid calls are not counted */
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    int hit = 0, drop = 1, zero = 0;
    u32 *tgid = target.lookup(&zero);
    if (!tgid || *tgid != (u32)(bpf_get_current_pid_tgid() >> 32)) return 0;
    u64 *c = counts.lookup(&hit);
    if (c) *c += 1;
    struct rec *r = ring.ringbuf_reserve(sizeof(struct rec));
    if (!r) { c = counts.lookup(&drop); if (c) *c += 1; return 0; }
    u64 id = bpf_get_current_pid_tgid();
    r->ts = bpf_ktime_get_ns(); r->probe = 0; r->cpu = bpf_get_smp_processor_id();
    r->pid = id >> 32; r->tid = (u32)id; r->uid = (u32)bpf_get_current_uid_gid();
    r->kstack = -1; r->ustack = -1; r->flags = 0;
    bpf_get_current_comm(&r->comm, sizeof(r->comm));
    ring.ringbuf_submit(r, 0);
    return 0;
}
"""


def bare_bcc(loadgen: str, producers: int, seconds: float, pages: int) -> dict:
    """A BCC ring-buffer consumer whose callback only counts: the usual way to read a ring in Python."""
    from ktui.bccload import load_bcc
    from ktui.headers import ensure_headers

    ensure_headers()
    bpf = load_bcc().BPF(text=BARE_PROGRAM.replace("PAGES", str(pages)).encode())
    got = [0]

    def callback(ctx, data, size):
        got[0] += 1

    bpf[b"ring"].open_ring_buffer(callback)
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            bpf.ring_buffer_poll(10)

    t = threading.Thread(target=poll)
    t.start()
    load = run_load(loadgen, producers, seconds,
                    on_start=lambda pid: bpf[b"target"].__setitem__(ct.c_int(0), ct.c_uint32(pid)))
    time.sleep(0.2)
    stop.set()
    t.join()
    bpf.ring_buffer_consume()
    counts = bpf[b"counts"]
    hits = sum(counts[ct.c_int(0)])
    dropped = sum(counts[ct.c_int(1)])
    bpf.cleanup()
    return {"delivered": got[0], "hits": hits, "dropped": dropped, "rate": got[0] / load["seconds"],
            "producer_rate": load["rate"]}


def bpftrace_rate(loadgen: str, producers: int, seconds: float) -> float:
    proc = subprocess.Popen(["bpftrace", "-e", "tracepoint:syscalls:sys_enter_getppid { @ = count(); }"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    while not seen or "Attaching" not in seen[-1]:  # bpftrace may warn about RLIMIT_MEMLOCK first, harmlessly
        line = proc.stdout.readline()
        if not line or len(seen) > 10:
            proc.kill()
            raise RuntimeError(f"bpftrace did not start: {' '.join(seen)}")
        seen.append(line.strip())
    time.sleep(0.2)
    load = run_load(loadgen, producers, seconds)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    return load["rate"]


# ---------------------------------------------------------------- ktui

def ktui_count_rate(loadgen: str, producers: int, seconds: float) -> tuple[float, int]:
    """The producers' rate under a ktui count-only probe (no events leave the kernel)."""
    from ktui.sources.live import LiveSource
    from ktui.probes.model import Action, ActionKind, Probe, ProbeKind

    probe = Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid", actions=[Action(ActionKind.COUNT)])
    source = LiveSource([probe])
    source.start(lambda update: None)
    try:
        time.sleep(0.2)
        load = run_load(loadgen, producers, seconds)
    finally:
        source.stop()
    hits = sum(source.last_update.counters[0].hits) if source.last_update else 0
    return load["rate"], hits


def ktui_record(loadgen: str, producers: int, seconds: float, tmp: Path) -> dict:
    """`ktui record SPEC -o FILE -- loadgen ...` as a user runs it: the load starts once the probe is
    attached, only its thread group is traced, and the recording ends when it exits."""
    from ktui.recording import RecordingReader

    out = tmp / f"rec-{time.monotonic_ns()}.ktrec"
    proc = subprocess.Popen([sys.executable, "-W", "ignore", "-m", "ktui", "record", GETPPID, "-o", str(out), "-q",
                             "--", *load_argv(loadgen, producers, seconds)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    load = parse_load(proc.stdout.read())
    err = proc.stderr.read()
    if proc.returncode != 0:
        raise RuntimeError(f"ktui record failed: {err.strip()}")
    with RecordingReader.open(out) as rec:
        events = rec.count()
        totals = rec.counters()[0].totals()
    size = out.stat().st_size
    out.unlink()
    return {"delivered": events, "hits": totals["hits"], "dropped": totals["dropped"],
            "rate": events / load["seconds"], "producer_rate": load["rate"], "rss_mb": usage.ru_maxrss / 1024,
            "file_mb": size / 1e6}


TEN_PROBES = [GETPPID] + [f"tracepoint:syscalls:sys_enter_{name}" for name in
                          ("getpid", "gettid", "read", "write", "openat", "close", "nanosleep", "futex", "getuid")]


def startup_seconds(loadgen: str, tmp: Path, bytecode: bool) -> float:
    """From launching `ktui record` (10 probes) to the kernel time of its first recorded event,
    both on CLOCK_MONOTONIC, with a producer already running (so an event is due at once).

    bytecode=False is this environment's default (PYTHONDONTWRITEBYTECODE=1: every module
    compiled from source at each start); True gives Python a bytecode cache in `tmp`, as an
    installed ktui has."""
    env = dict(os.environ)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    from ktui.recording import RecordingReader

    out = tmp / f"start-{time.monotonic_ns()}.ktrec"
    load = subprocess.Popen([loadgen, "30"], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.1)
        t0 = time.monotonic_ns()
        proc = subprocess.Popen([sys.executable, "-W", "ignore", "-m", "ktui", "record", *TEN_PROBES, "-o", str(out),
                                 "-q", "--duration", "1"], cwd=ROOT, stderr=subprocess.PIPE, text=True, env=env)
        _, err = proc.communicate(timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"ktui record failed: {err.strip()}")
    finally:
        load.kill()
        load.wait()
    with RecordingReader.open(out) as rec:
        first = min(int(arr["ts"].min()) for arr in rec.events())
    out.unlink()
    return (first - t0) / 1e9


# ---------------------------------------------------------------- main

def _median_round(rounds: list[tuple]) -> tuple:
    """The round whose 1-producer ratio is the median (its figures are shown in full)."""
    ordered = sorted(rounds, key=lambda r: r[1]["rate"] / max(r[0]["rate"], 1))
    return ordered[len(ordered) // 2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each throughput/overhead run")
    ap.add_argument("--long", action="store_true", help="memory run of 60 s (default 10 s)")
    ap.add_argument("--only", default="throughput,overhead,rss,startup")
    ap.add_argument("--producers", type=int, default=NCPU, help="producer threads for the highest-rate runs")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of throughput and overhead; medians are shown")
    args = ap.parse_args()
    only = set(args.only.split(","))
    if os.geteuid() != 0:
        print("bench_engine needs root (BPF).", file=sys.stderr)
        return 1
    from ktui.sources.live import default_ring_pages
    from ktui.headers import ensure_headers

    ensure_headers()
    pages = default_ring_pages(1)
    print(f"machine: {NCPU} CPUs, kernel {os.uname().release}; ring buffer {pages} pages per probe (ktui and bare)")
    with tempfile.TemporaryDirectory(prefix="ktui-bench-") as tmp_s:
        tmp = Path(tmp_s)
        loadgen = build_loadgen(tmp)
        s = args.seconds
        base = run_load(loadgen, 1, s)
        base_all = run_load(loadgen, args.producers, s)
        print(f"no probe: 1 producer {base['rate'] / 1e6:.2f} M calls/s; {args.producers} producers {base_all['rate'] / 1e6:.2f} M calls/s")

        if "throughput" in only:
            print("\n1. throughput (events delivered per second)")
            rounds = []
            for _ in range(args.repeat):  # alternated, so a noisy neighbour hits both sides alike
                rounds.append((bare_bcc(loadgen, 1, s, pages), ktui_record(loadgen, 1, s, tmp),
                               bare_bcc(loadgen, args.producers, s, pages), ktui_record(loadgen, args.producers, s, tmp)))
            bare1, k1, bare_n, kn = rounds[len(rounds) // 2] if args.repeat == 1 else _median_round(rounds)
            if args.repeat > 1:
                for i, label in ((0, "1 producer"), (2, f"{args.producers} producers")):
                    ratios = [r[i + 1]["rate"] / max(r[i]["rate"], 1) for r in rounds]
                    print(f"  {label}: ratios over {args.repeat} rounds: {', '.join(f'{x:.2f}' for x in ratios)}")
            for label, bare, k in (("1 producer", bare1, k1), (f"{args.producers} producers", bare_n, kn)):
                print(f"  {label}: bare BCC callback {bare['rate'] / 1e6:.2f} M/s ({bare['dropped']:,} of "
                      f"{bare['hits']:,} dropped; producer {bare['producer_rate'] / 1e6:.2f} M calls/s)")
                print(f"  {label}: ktui record (decode, counters, zstd+SQLite to disk) {k['rate'] / 1e6:.2f} M/s "
                      f"({k['dropped']:,} of {k['hits']:,} dropped; producer {k['producer_rate'] / 1e6:.2f} M calls/s; "
                      f"file {k['file_mb']:.1f} MB)")
                print(f"  {label}: ratio ktui / bare = {k['rate'] / max(bare['rate'], 1):.2f}  (goal >= 2.0)")
            print(f"  zero drops at the full rate of one producer: {'yes' if k1['dropped'] == 0 else 'NO'}")
            best = max((k1, kn), key=lambda k: k["rate"])
            print(f"  highest sustained rate written to disk: {best['rate'] / 1e6:.2f} M events/s "
                  f"({best['dropped']:,} dropped, counted)")

        if "overhead" in only:
            print(f"\n2. overhead ({args.producers} producers' call rate under a count-only probe)")
            pairs = []
            for i in range(args.repeat):  # the order alternates, so a drifting neighbour favours neither
                if i % 2:
                    kc, hits = ktui_count_rate(loadgen, args.producers, s)
                    pairs.append((bpftrace_rate(loadgen, args.producers, s), kc, hits))
                else:
                    pairs.append((bpftrace_rate(loadgen, args.producers, s), *ktui_count_rate(loadgen, args.producers, s)))
            if args.repeat > 1:
                print(f"  ratios over {args.repeat} rounds: {', '.join(f'{k / b:.3f}' for b, k, _ in pairs)}")
            bt, kc, hits = sorted(pairs, key=lambda p: p[1] / p[0])[len(pairs) // 2]
            print(f"  bpftrace count: {bt / 1e6:.2f} M calls/s; ktui count-only: {kc / 1e6:.2f} M calls/s "
                  f"({hits:,} hits counted); no probe: {base_all['rate'] / 1e6:.2f} M calls/s")
            print(f"  ratio ktui / bpftrace = {kc / bt:.3f}  (goal >= 0.95; the median round's)")

        if "rss" in only:
            secs = 60.0 if args.long else 10.0
            print(f"\n3. memory: `ktui record` for {secs:.0f} s at the highest rate ({args.producers} producers)")
            r = ktui_record(loadgen, args.producers, secs, tmp)
            print(f"  peak RSS {r['rss_mb']:.0f} MB (goal < 300 MB); {r['delivered']:,} events written, "
                  f"{r['dropped']:,} dropped, {r['rate'] / 1e6:.2f} M/s")

        if "startup" in only:
            print("\n4. start-up: launch of `ktui record` with 10 probes to its first event")
            cold = [startup_seconds(loadgen, tmp, bytecode=False) for _ in range(3)]
            print(f"  no bytecode cache: {', '.join(f'{t:.2f}' for t in cold)} s; median {statistics.median(cold):.2f} s")
            startup_seconds(loadgen, tmp, bytecode=True)  # fills the cache
            warm = [startup_seconds(loadgen, tmp, bytecode=True) for _ in range(3)]
            print(f"  with bytecode cache (installed): {', '.join(f'{t:.2f}' for t in warm)} s; "
                  f"median {statistics.median(warm):.2f} s (goal < 1.5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
