"""`ktui record SPEC... -o FILE [--duration S] [-p PID] [-- COMMAND ARGS...]`: record without the UI.

The proof that the engine stands alone. It stops when the duration ends, the traced
command (or process) exits, or on Ctrl-C / SIGTERM; in every case the probes are
detached and the recording is complete and readable.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from ktui.errors import KtuiError, UsageError
from ktui.numbers import duration_arg, pid_arg

PROGRESS_EVERY_S = 0.5


class _RecordParser(argparse.ArgumentParser):
    """Everything after the first ``--`` is the command to run, untouched by option parsing."""

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        command: list[str] = []
        if "--" in args:
            i = args.index("--")
            args, command = args[:i], args[i + 1 :]
        ns, extra = super().parse_known_args(args, namespace)
        ns.command_argv = command
        return ns, extra


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "record",
        help="record probes to a file without the UI (replay it with `ktui replay FILE`)",
        description="Compiles the probes, attaches them, and writes every event, the loss counters, stacks "
        "and histograms to a recording. Progress (events, rate, dropped) goes to stderr.",
    )
    p.__class__ = _RecordParser
    p.add_argument("specs", nargs="+", metavar="SPEC",
                   help="probes: bpftrace names (tracepoint:syscalls:sys_enter_openat), kprobe_events lines "
                        "or SystemTap points")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the recording to create (refused if it exists)")
    p.add_argument("-d", "--duration", type=duration_arg, metavar="SECONDS", help="stop after this long")
    p.add_argument("-p", "--pid", type=pid_arg, help="trace only this process")
    p.add_argument("--ring-pages", type=int, metavar="N", help="pages per ring buffer (a power of two)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--trace-self", action="store_true", help="let probes see ktui's own process too")
    p.epilog = "Add `-- COMMAND ARGS...` to start a command (held until the probes are attached) and trace it."
    p.set_defaults(run=run)


def _check_output(path: str) -> None:
    if os.path.lexists(path):
        raise UsageError(f"{path} exists; choose another name (ktui record never overwrites).")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"cannot write {path}: the directory {parent} does not exist.")
    if not os.access(parent, os.W_OK):
        raise KtuiError(f"cannot write {path}: the directory {parent} is not writable.")


def _parse_probes(specs: list[str]):
    from ktui.probes.spec import parse_spec

    probes = []
    for text in specs:
        probes.extend(parse_spec(text))
    if not probes:
        raise UsageError("no probes given.")
    return probes


class _Progress:
    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last = None
        self._printed_at = 0.0
        self._prev = (time.monotonic(), 0)

    def sink(self, update) -> None:
        self.last = update

    def totals(self) -> tuple[int, int, int]:
        if self.last is None:
            return 0, 0, 0
        t = [c.totals() for c in self.last.counters.values()]
        return (sum(x["hits"] for x in t), sum(x["delivered"] for x in t), sum(x["dropped"] for x in t))

    def show(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.quiet or (not force and now - self._printed_at < (PROGRESS_EVERY_S if self.tty else 2.0)):
            return
        hits, delivered, dropped = self.totals()
        t0, n0 = self._prev
        rate = (delivered - n0) / (now - t0) if now > t0 else 0.0
        self._prev = (now, delivered)
        self._printed_at = now
        line = f"{delivered:,} events, {rate:,.0f}/s, {dropped:,} dropped"
        if self.tty:
            sys.stderr.write("\r\033[K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    from ktui.engine.cleanup import install_termination_handlers
    from ktui.sources.live import LiveSource
    from ktui.kernel import kernel_identity
    from ktui.probes.model import TargetProcess
    from ktui.recording import RecordingWriter

    if args.pid is not None and args.command_argv:
        raise UsageError("give either -p PID or -- COMMAND, not both.")
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be a positive number of seconds.")
    _check_output(args.output)
    probes = _parse_probes(args.specs)
    target = None
    if args.pid is not None:
        target = TargetProcess(pid=args.pid)
    elif args.command_argv:
        target = TargetProcess(command=list(args.command_argv))

    install_termination_handlers()
    progress = _Progress(args.quiet)
    source = LiveSource(probes, target=target, ring_pages=args.ring_pages, trace_self=args.trace_self)
    recorder = None
    interrupted = False
    try:
        source.prepare()
        for state in source.states.values():
            if state.status == "failed":
                print(f"ktui: {state.spec}: not recorded: {state.reason}", file=sys.stderr)
        if not args.quiet:
            for note in source.notes:  # fallbacks the compiler took (a kprobe placed on a tracepoint...)
                print(f"ktui: note: {note}", file=sys.stderr)
        meta = {"argv": ["ktui", "record", *sys.argv[2:]] if sys.argv[1:2] == ["record"] else [],
                "specs": list(args.specs), "target_pid": source.target_pid, "notes": source.notes}
        if args.command_argv:
            meta["command"] = list(args.command_argv)
        by_id = {cp_id: source._compiled[cp_id].probe.to_dict() for cp_id in source.layouts}
        recorder = RecordingWriter.create(args.output, kernel_identity(), list(source.layouts.values()), by_id, meta)
        source.recorder = recorder
        source.start(progress.sink)
        deadline = time.monotonic() + args.duration if args.duration else None
        while not source.finished.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            if source.recorder_error is not None:
                break
            source.finished.wait(0.1)
            progress.show()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # A second Ctrl-C must not cut the recording short while it is being finished.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            source.stop()
            if recorder is not None:
                recorder.close()
        finally:
            signal.signal(signal.SIGINT, previous)
    if source.last_update is not None:
        progress.last = source.last_update
    progress.show(force=True)
    if not args.quiet:
        if progress.tty:
            sys.stderr.write("\n")
        hits, delivered, dropped = progress.totals()
        why = "interrupted" if interrupted else (source.last_update.message if source.last_update else "") or "done"
        print(f"ktui: {why}: {delivered:,} events of {hits:,} hits written to {args.output}"
              + (f"; {dropped:,} dropped by full ring buffers" if dropped else ""), file=sys.stderr)
    if source.recorder_error is not None:
        raise source.recorder_error
    return 0
