"""Test helpers shared by the live tests: exact workloads and a contract-following BPF program.

The workloads are tiny C programs (built once with gcc into ktui's cache): a Python
child would make syscalls of its own at startup, a C loop makes exactly the ones asked.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

GETPPID_C = r"""
#define _GNU_SOURCE
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 0;
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
    return 0;
}
"""

UPROBE_TARGET_C = r"""
#include <stdlib.h>
#include <unistd.h>
/* Called exactly n times; noinline and used so the symbol exists and is a real call. */
__attribute__((noinline, used)) long ktui_test_target(long i) {
    __asm__ volatile("" ::: "memory");
    return i * 2;
}
/* A caller between main and the target: at a uprobe on a function's first instruction the
   frame pointer is still the caller's, so a stack walk shows target, then main. */
__attribute__((noinline, used)) long ktui_test_outer(long i) {
    long r = ktui_test_target(i);
    __asm__ volatile("" ::: "memory");
    return r;
}
/* argv[2]: milliseconds to stay alive afterwards (so user stacks can still be symbolized). */
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 0, s = 0;
    for (long i = 0; i < n; i++) s += ktui_test_outer(i);
    if (argc > 2) usleep(atol(argv[2]) * 1000);
    return (int)(s & 1);
}
"""

BUSY_LOOP_C = r"""
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
/* Spins (with a syscall per iteration so there is kernel time to sample) for argv[1] ms. */
int main(int argc, char **argv) {
    long ms = argc > 1 ? atol(argv[1]) : 500;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        for (int i = 0; i < 1000; i++) syscall(SYS_getppid);
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= ms) return 0;
    }
}
"""

READ_DIR_C = r"""
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
/* read() on a directory fd argv[1] times: each returns -EISDIR (-21) and reads nothing. */
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 0;
    char buf[16];
    int fd = open("/", O_RDONLY | O_DIRECTORY);
    if (fd < 0) return 2;
    for (long i = 0; i < n; i++)
        if (read(fd, buf, sizeof(buf)) >= 0) return 3;
    return 0;
}
"""

USER_SPIN_C = r"""
#include <stdlib.h>
#include <time.h>
/* Spins in user mode (no system call but the vDSO clock) for argv[1] ms, in ktui_spin. */
__attribute__((noinline, used)) long ktui_spin(long n) {
    long s = 0;
    for (long i = 0; i < n; i++) { s += i ^ (s >> 3); __asm__ volatile("" ::: "memory"); }
    return s;
}
int main(int argc, char **argv) {
    long ms = argc > 1 ? atol(argv[1]) : 500, s = 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        s += ktui_spin(1000000);
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= ms) return (int)(s & 1);
    }
}
"""


def build_c(name: str, source: str) -> Path:
    """Compile ``source`` once (keyed by its hash) into the cache; return the binary."""
    from ktui.paths import cache_dir

    # Frame pointers: the kernel walks user stacks by them (BPF_F_USER_STACK).
    flags = ["-O1", "-fno-inline", "-fno-omit-frame-pointer"]
    digest = hashlib.sha256((source + " ".join(flags)).encode()).hexdigest()[:12]
    out = cache_dir() / "test-bin" / f"{name}-{digest}"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.with_suffix(".c")
    src.write_text(source)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    subprocess.run(["gcc", *flags, "-o", str(tmp), str(src)], check=True, capture_output=True)
    os.replace(tmp, out)
    return out


def getppid_binary() -> Path:
    return build_c("getppid", GETPPID_C)


def getppid_child(n: int) -> int:
    """Run a child that calls syscall(SYS_getppid) exactly n times; wait for it; return its pid."""
    proc = subprocess.Popen([str(getppid_binary()), str(n)])
    proc.wait()
    assert proc.returncode == 0
    return proc.pid


def uprobe_target_binary() -> Path:
    """A program whose function ``ktui_test_target`` is called exactly argv[1] times."""
    return build_c("uprobe-target", UPROBE_TARGET_C)


UPROBE_SYMBOL = "ktui_test_target"


def run_uprobe_target(n: int, linger_ms: int = 0) -> int:
    """Run the uprobe target (n calls, then linger_ms alive); wait for it; return its pid."""
    proc = subprocess.Popen([str(uprobe_target_binary()), str(n), str(linger_ms)])
    proc.wait()
    return proc.pid


def busy_loop_binary() -> Path:
    return build_c("busy-loop", BUSY_LOOP_C)


def user_spin_binary() -> Path:
    """A program that spends argv[1] ms in user mode, in its function ``ktui_spin``."""
    return build_c("user-spin", USER_SPIN_C)


def read_dir_binary() -> Path:
    """A program whose argv[1] read() calls on a directory all fail with -EISDIR."""
    return build_c("read-dir", READ_DIR_C)


def contract_program(ring_pages: int = 64) -> str:
    """A hand-written BCC program following the compiler's contract, for testing the reader alone.

    Probe 0 on tracepoint syscalls:sys_enter_getppid, fetching one u64 (the call's
    sequence number on this CPU), with the counters and the control value (enabled flags, target).
    """
    return r"""
#include <uapi/linux/ptrace.h>
struct ktui_hdr { u64 ts; u32 probe; u32 cpu; u32 pid; u32 tid; u32 uid;
                  s32 kstack; s32 ustack; u32 flags; char comm[16]; };
struct rec0 { struct ktui_hdr h; u64 seq; };
BPF_PERCPU_ARRAY(ktui_counters, u64, 4);
struct ktui_control { u32 target; u32 exclude; u8 enabled[8]; };
BPF_ARRAY(ktui_config, struct ktui_control, 1);
BPF_RINGBUF_OUTPUT(ktui_ring_0, RING_PAGES);

static inline void bump(int slot) {
    u64 *c = ktui_counters.lookup(&slot);
    if (c) *c += 1;
}

int probe_0(void *ctx) {
    int zero = 0;
    struct ktui_control *ctl = ktui_config.lookup(&zero);
    if (!ctl || !ctl->enabled[0]) return 0;
    u64 id = bpf_get_current_pid_tgid();
    if (ctl->target && ctl->target != (u32)(id >> 32)) return 0;
    if (ctl->exclude == (u32)(id >> 32)) return 0;
    bump(0);
    struct rec0 *r = ktui_ring_0.ringbuf_reserve(sizeof(struct rec0));
    if (!r) { bump(2); return 0; }
    r->h.ts = bpf_ktime_get_ns();
    r->h.probe = 0;
    r->h.cpu = bpf_get_smp_processor_id();
    r->h.pid = id >> 32;
    r->h.tid = (u32)id;
    r->h.uid = (u32)bpf_get_current_uid_gid();
    r->h.kstack = -1;
    r->h.ustack = -1;
    r->h.flags = 0;
    bpf_get_current_comm(&r->h.comm, sizeof(r->h.comm));
    int one = 1;
    u64 *c = ktui_counters.lookup(&one);
    r->seq = c ? *c : 0;
    ktui_ring_0.ringbuf_submit(r, 0);
    bump(1);
    return 0;
}
""".replace("RING_PAGES", str(ring_pages))


CONTRACT_TRACEPOINT = "syscalls:sys_enter_getppid"


def contract_compiled(ring_pages: int = 256):
    """The contract program as the compiler would hand it to the engine (one probe, id 0)."""
    from ktui.compiler.program import AttachPlan, CompiledProbe, CompiledProgram
    from ktui.events import FieldLayout, ProbeLayout
    from ktui.probes.model import Probe, ProbeKind

    probe = Probe(ProbeKind.TRACEPOINT, CONTRACT_TRACEPOINT)
    layout = ProbeLayout(0, probe.name, probe.spec, (FieldLayout("seq", "<u8"),))
    plan = AttachPlan("tracepoint", "probe_0", "TRACEPOINT", event=CONTRACT_TRACEPOINT)
    cp = CompiledProbe(probe, 0, layout, "probe_0", plan, "ktui_ring_0")
    return CompiledProgram(contract_program(ring_pages), [cp], ring_pages)


def programs_left(loaded: set[int], within: float = 10.0) -> set[int]:
    """Which of these BPF program ids the kernel still lists once it has had up to ``within`` seconds
    to free them (it frees a program some time after the last reference goes, not at once): empty as
    soon as all are gone, instead of a fixed wait before one look."""
    deadline = time.monotonic() + within
    while True:
        out = subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True, text=True).stdout
        still = {p["id"] for p in json.loads(out or "[]")} & loaded
        if not still or time.monotonic() >= deadline:
            return still
        time.sleep(0.1)


def prog_ids_of(pid: int) -> set[int]:
    """BPF programs a process holds, from its file descriptors' fdinfo (bpftool here lacks pid info)."""
    ids = set()
    try:
        infos = list(Path(f"/proc/{pid}/fdinfo").iterdir())
    except OSError:
        return ids
    for info in infos:
        try:
            for line in info.read_text().splitlines():
                if line.startswith("prog_id:"):
                    ids.add(int(line.split()[1]))
        except OSError:
            pass
    return ids


# Peak RSS of one command, measured honestly. Linux carries a process's peak RSS across fork and exec
# (the child's ru_maxrss starts at the parent's RSS), so a command run straight from a pytest process
# that has grown to 800 MB "peaks" at 800 MB. A small Python launcher in between forks the command
# from its own small memory and reports the command's own ru_maxrss from wait4.
_MEASURE = """
import os, sys
report, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    try:
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def run_measured(argv: list[str], *, timeout: float = 120, cwd: str | None = None) -> tuple[int, str, str, float, int]:
    """(exit code, stdout, stderr, seconds, peak RSS in KiB) of one command; killed (-9) after `timeout`."""
    import tempfile
    import time

    with tempfile.NamedTemporaryFile("r", suffix=".rss") as report:
        start = time.perf_counter()
        with subprocess.Popen(["/usr/bin/python3", "-c", _MEASURE, report.name, *argv], cwd=cwd,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True) as proc:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                out, err = proc.communicate()
        seconds = time.perf_counter() - start
        fields = report.read().split()
    code, rss = (int(fields[0]), int(fields[1])) if len(fields) == 2 else (-9, 0)
    return code, out.decode(errors="replace"), err.decode(errors="replace"), seconds, rss
