"""`ktui list PATTERN` beside `bpftrace -l PATTERN`, before and after a change, in one run.

    .venv/bin/python bench/bench_list.py [--runs 7] [--before REV] [--skip-app] [--only patterns|big|app]

For each pattern bpftrace answers here, every round runs bpftrace, the current ktui and the ktui of
REV (default: main as the start-up work found it, checked out into a temporary git worktree) back to
back, so all see the same machine load. The current ktui is run as a user runs it: `.venv/bin/ktui`,
the launcher scripts/setup.sh writes (python -S, see ktui/launch.py; pip's console script when there
is no launcher). A REV that has ktui/launch.py is run as that launcher runs it (python -S, the
checkout first on sys.path); an older REV as its own console script ran: this venv's python with its
site machinery and `from ktui.cli import main` (PYTHONPATH=the checkout) - with this venv's .pth
files, so without the editable-install finder REV's venv had; REV's own figures were a little higher.

cold = the index not yet built: a fresh, empty KTUI_CACHE_DIR for each ktui run, so every cold
  run reads tracefs or the program's symbol tables and writes the index (kernel names, or the
  per-binary index). The page cache is left alone (dropping it would disturb the other work on this
  machine and bpftrace alike); the files both tools read are in it after the first round.
warm = the same cache directory, filled by one run before the rounds.

Both checkouts are byte-compiled first (compileall), as an installed ktui is: an environment with
PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module on every run.

Each figure is the median over the rounds; the ratio is ktui / bpftrace (goal <= 1.0). Then
`ktui list '*'`, `--json '*'`, `-v` over 1,000 kernel functions, and the app: launch to a usable
browser (a search answered) and launch to the first live event on the screen (real ktui in tmux).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
BEFORE_REV = "be8c817"  # main as the start-up work found it (59e308c: before the SQLite index)
PATTERNS = ("tracepoint:*", "tracepoint:sched:*", "uprobe:/bin/bash:*read*")
# what the `ktui` console script runs (python -m adds runpy's own start-up)
LAUNCH = "import sys; from ktui.cli import main; sys.exit(main())"


LAUNCHER = ROOT / ".venv" / "bin" / "ktui"


# what the launcher scripts/setup.sh writes runs, for a REV that has one (ktui/launch.py)
LAUNCH_S = "import sys; sys.path.insert(0, {code!r}); from ktui.launch import main; sys.exit(main(site_deferred=True))"


def ktui_cmd(*args: str, code: Path | None = None) -> list[str]:
    """The current ktui as a user runs it (code None), or REV's as it was run: through its launcher
    (python -S) when REV has ktui/launch.py, else as its console script ran it."""
    if code is None and LAUNCHER.is_file() and os.path.samefile(Path(PY).parent, LAUNCHER.parent):
        return [str(LAUNCHER), *args]
    if code is not None and (code / "ktui" / "launch.py").is_file():
        return [PY, "-S", "-c", LAUNCH_S.format(code=str(code)), *args]
    return [PY, "-c", LAUNCH, *args]


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, str]:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd="/")
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return dt, r.stdout


def env_for(code: Path | None, cache: str) -> dict:
    env = dict(os.environ, KTUI_CACHE_DIR=cache)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    else:
        env.pop("PYTHONPATH", None)
    return env


def ms(x: float) -> str:
    return f"{x * 1000:7.1f} ms"


def bench_patterns(before: Path | None, runs: int) -> None:
    bpftrace = shutil.which("bpftrace")
    print(f"\n`ktui list PATTERN` vs `bpftrace -l PATTERN`: medians of {runs} paired rounds (wall time)")
    if not bpftrace:
        print("  bpftrace is not installed: no comparison")
        return
    sides = [("after", None)] + ([("before", before)] if before else [])
    for pattern in PATTERNS:
        for mode in ("cold", "warm"):
            times: dict[str, list[float]] = {"bpftrace": [], **{s: [] for s, _ in sides}}
            outs: dict[str, str] = {}
            warm_dirs = {s: tempfile.mkdtemp(prefix="ktui-bench-") for s, _ in sides}
            try:
                for s, code in sides:  # fill the warm caches once
                    timed(ktui_cmd("list", pattern, code=code), env_for(code, warm_dirs[s]))
                for _ in range(runs):
                    t, outs["bpftrace"] = timed([bpftrace, "-l", pattern])
                    times["bpftrace"].append(t)
                    for s, code in sides:
                        d = tempfile.mkdtemp(prefix="ktui-bench-") if mode == "cold" else warm_dirs[s]
                        try:
                            t, outs[s] = timed(ktui_cmd("list", pattern, code=code), env_for(code, d))
                        finally:
                            if mode == "cold":
                                shutil.rmtree(d, ignore_errors=True)
                        times[s].append(t)
            finally:
                for d in warm_dirs.values():
                    shutil.rmtree(d, ignore_errors=True)
            med = {k: statistics.median(v) for k, v in times.items()}
            bt = med["bpftrace"]
            line = f"  {pattern:26} {mode}  bpftrace {ms(bt)}"
            for s, _ in sides:
                line += f"   ktui {s} {ms(med[s])} (ratio {med[s] / bt:4.2f})"
            blines = sorted(x for x in outs["bpftrace"].splitlines() if x and not x.endswith(":"))
            same = sorted(outs["after"].splitlines()) == blines
            if before:
                same_before = outs["after"] == outs["before"]
                line += "   output: " + ("same as before" if same_before else "DIFFERS from before")
            line += ", " + ("same names as bpftrace" if same else
                            f"{len(outs['after'].splitlines())} names, bpftrace {len(blines)}")
            print(line)
    t = statistics.median(timed([PY, "-c", "pass"])[0] for _ in range(runs))
    ts = statistics.median(timed([PY, "-S", "-c", "pass"])[0] for _ in range(runs))
    tb = statistics.median(timed([bpftrace, "--version"])[0] for _ in range(runs))
    print(f"  (for scale: this python starting and exiting {ms(t)}, with -S {ms(ts)}; "
          f"`bpftrace --version` {ms(tb)})")


def bench_big(before: Path | None, runs: int) -> None:
    print(f"\nbig listings, warm cache: medians of {runs} runs (before -> after)")
    sides = [("after", None)] + ([("before", before)] if before else [])
    cases = [("list '*'", ["list", "*"]), ("list --json '*'", ["list", "--json", "*"]),
             ("list -v --kind kprobe --limit 1000 'kprobe:*'", ["list", "-v", "--kind", "kprobe", "--limit", "1000", "kprobe:*"])]
    for label, args in cases:
        res = {}
        for s, code in sides:
            d = tempfile.mkdtemp(prefix="ktui-bench-")
            try:
                timed(ktui_cmd("list", "tracepoint:sched:*", code=code), env_for(code, d))
                timed(ktui_cmd("list", "kprobe:vfs_read", code=code), env_for(code, d))  # the whole index
                ts, out = [], ""
                for _ in range(runs):
                    t, out = timed(ktui_cmd(*args, code=code), env_for(code, d))
                    ts.append(t)
                res[s] = (statistics.median(ts), len(out.encode()), out.count("\n"))
            finally:
                shutil.rmtree(d, ignore_errors=True)
        text = "   ".join(f"{s} {ms(t)} ({n / 1e6:.1f} MB, {lines} lines)" for s, (t, n, lines) in res.items())
        print(f"  {label:48} {text}")


BROWSER = r"""
import asyncio, os, sys, time
t0 = time.perf_counter()
from ktui.app import KtuiApp
from ktui.app_main import _catalog_loader
from ktui.widgets.probe_editor import ProbeEditor
async def main():
    app = KtuiApp(catalog_loader=_catalog_loader())  # the app's own loader, as `ktui` passes it
    async with app.run_test(size=(120, 40)) as pilot:
        cat = None
        for _ in range(6000):
            cat = app.main_query(ProbeEditor).catalog  # set when the browser got the catalog
            if cat is not None:
                break
            await pilot.pause(0.01)
        rows = cat.search_indices("*sched_switch*") if cat is not None else []
        print(time.perf_counter() - t0, len(rows))
        app.exit()
asyncio.run(main())
"""


def bench_browser(before: Path | None, runs: int) -> None:
    """Launch to a usable browser: the app object up and its catalog answering a search."""
    print(f"\napp launch to a browser that answers a search (headless pilot; medians of {runs}; before -> after)")
    sides = [("after", None)] + ([("before", before)] if before else [])
    for s, code in sides:
        d = tempfile.mkdtemp(prefix="ktui-bench-")
        try:
            timed(ktui_cmd("list", "kprobe:vfs_read", code=code), env_for(code, d))  # warm index
            ts = []
            for _ in range(runs):
                r = subprocess.run([PY, "-c", BROWSER], capture_output=True, text=True, env=env_for(code, d), cwd="/",
                                   timeout=300)
                if r.returncode != 0 or not r.stdout.strip():
                    print(f"  {s}: could not measure ({(r.stderr.strip().splitlines() or ['no output'])[-1]})")
                    break
                t, hits = r.stdout.split()
                ts.append(float(t))
            if ts:
                print(f"  {s:6} {ms(statistics.median(ts))}  ({hits} hits for *sched_switch*)")
        finally:
            shutil.rmtree(d, ignore_errors=True)


EVENT_ROW = re.compile(r"\d+\.\d{6} +\d+ +\S")  # a stream row: TIME(s) CPU COMM ...


def bench_live(before: Path | None, runs: int) -> None:
    """Launch to the first live event: the real ktui in a 120x36 tmux pane, live on this kernel with
    its default session; the clock stops when capture-pane first shows an event row in the stream."""
    print(f"\napp launch to the first live event on screen (real ktui in tmux; medians of {runs}; before -> after)")
    if os.geteuid() != 0 or not shutil.which("tmux"):
        print("  needs root and tmux")
        return
    sides = [("after", None)] + ([("before", before)] if before else [])
    for s, code in sides:
        d = tempfile.mkdtemp(prefix="ktui-bench-")
        ts = []
        try:
            timed(ktui_cmd("list", "kprobe:vfs_read", code=code), env_for(code, d))  # warm index
            env = env_for(code, d)
            cmd = " ".join(f"{k}='{v}'" for k, v in (("KTUI_CACHE_DIR", d), ("PYTHONPATH", env.get("PYTHONPATH", "")))
                           ) + " " + " ".join(f"'{a}'" for a in ktui_cmd(code=code))
            for i in range(runs):
                session = f"ktui-bench-live-{os.getpid()}-{i}"
                t0 = time.perf_counter()
                subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "36", cmd], check=True)
                try:
                    deadline = t0 + 60
                    while time.perf_counter() < deadline:
                        screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                                text=True).stdout
                        if EVENT_ROW.search(screen):
                            ts.append(time.perf_counter() - t0)
                            break
                        time.sleep(0.02)
                    else:
                        print(f"  {s}: no event on screen within 60 s:\n{screen}")
                        break
                finally:
                    subprocess.run(["tmux", "send-keys", "-t", session, "q"], capture_output=True)
                    time.sleep(1.0)
                    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
            if ts:
                print(f"  {s:6} {ms(statistics.median(ts))}  (rounds: {', '.join(f'{t * 1000:.0f}' for t in ts)} ms)")
        finally:
            shutil.rmtree(d, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--before", default=BEFORE_REV, help="git revision to compare with ('' for none)")
    ap.add_argument("--skip-app", action="store_true")
    ap.add_argument("--only", choices=("patterns", "big", "app"), help="one part only")
    args = ap.parse_args()
    print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
          f"load average {os.getloadavg()[0]:.2f} (other work on the machine skews every figure)")
    before = None
    tmp = None
    if args.before:
        tmp = tempfile.mkdtemp(prefix="ktui-before-")
        before = Path(tmp) / "src"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before],
                       check=True, capture_output=True)
        print(f"before = {args.before} ({before}), after = {ROOT}")
    # Both sides run from compiled bytecode, as an installed ktui does (pip compiles at install; an
    # editable checkout writes __pycache__ on its first run). Without this, an environment with
    # PYTHONDONTWRITEBYTECODE=1 (this VM's sessions have it) compiles every module on every run: that
    # costs a listing about as much as all its own work and was in this bench's earlier figures.
    for code in (ROOT, before):
        if code is not None:
            subprocess.run([PY, "-m", "compileall", "-q", str(code / "ktui")], check=True, capture_output=True)
    print("bytecode: compiled for both sides (compileall)"
          + ("; PYTHONDONTWRITEBYTECODE is set here" if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""))
    try:
        if args.only in (None, "patterns"):
            bench_patterns(before, args.runs)
        if args.only in (None, "big"):
            bench_big(before, max(3, args.runs // 2))
        if not args.skip_app and args.only in (None, "app"):
            bench_browser(before, max(3, args.runs // 2))
            bench_live(before, max(3, args.runs // 2))
    finally:
        if before is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], capture_output=True)
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
