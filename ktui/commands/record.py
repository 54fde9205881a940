"""`ktui record SPEC... -o FILE [--duration S] [-p PID] [-- COMMAND ARGS...]`: record without the UI.

The proof that the engine stands alone. It stops when the duration ends, the traced
command (or process) exits, or on Ctrl-C / SIGTERM / SIGHUP; in every case the probes
are detached and the recording is complete and readable. Shutdown is idempotent: any
number of signals at any moment leave either no file or a complete one, and the last
line says which (see _Shutdown).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ktui.errors import KtuiError, UsageError
from ktui.numbers import duration_arg, pid_arg
from ktui.privilege import require_bpf
from ktui.textsafe import term_safe

if TYPE_CHECKING:
    from ktui.commands import Subparsers
    from ktui.catalog import Catalog
    from ktui.events import Update
    from ktui.probes.model import Probe
    from ktui.recording import RecordingWriter
    from ktui.recording.flight import FlightRecorder

PROGRESS_EVERY_S = 0.5
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Shutdown:
    """The stop signals of one `ktui record`: the first stops it, later ones are only counted.

    A signal unwinds the main thread (as KeyboardInterrupt) at most once, and only while
    that is safe: while the probes are being prepared (no file exists yet) or while
    recording (the finally clause detaches and finishes the file). While the file is
    being created or finished, a signal is remembered and acted on afterwards, so the
    file is never left half-made and the message never claims a file that is not there.
    """

    def __init__(self) -> None:
        self.phase = "preparing"  # preparing, creating, recording, finishing, done
        self.signal_name: str | None = None  # the first stop signal received
        self.count = 0
        self._raised = False
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handler)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]  # what signal.signal returned before: a handler, SIG_DFL or SIG_IGN

    def _handler(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name
        self._maybe_raise()

    def enter(self, phase: str) -> None:
        self.phase = phase
        self._maybe_raise()

    def _maybe_raise(self) -> None:
        if self.signal_name is not None and not self._raised and self.phase in ("preparing", "recording"):
            self._raised = True
            raise KeyboardInterrupt(self.signal_name)

    @property
    def interrupted(self) -> bool:
        return self.signal_name is not None


class _RecordParser(argparse.ArgumentParser):
    """Everything after the first ``--`` is the command to run, untouched by option parsing."""

    # argparse's overloads return the type of the namespace passed in; this parser is only ever given
    # None or a Namespace, and repeating the three overloads would say nothing more.
    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        args = list(sys.argv[1:] if args is None else args)
        command: list[str] = []
        if "--" in args:
            i = args.index("--")
            args, command = args[:i], args[i + 1 :]
        ns, extra = super().parse_known_args(args, namespace)
        ns.command_argv = command
        return ns, extra


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "record",
        help="record probes to a file without the UI (replay it with `ktui replay FILE`)",
        description="Compiles the probes, attaches them, and writes every event, the loss counters, stacks "
        "and histograms to a recording. Progress (events, rate, dropped) goes to stderr.",
    )
    p.__class__ = _RecordParser
    p.add_argument("specs", nargs="*", metavar="SPEC",
                   help="probes: bpftrace names (tracepoint:syscalls:sys_enter_openat), kprobe_events lines "
                        "or SystemTap points")
    p.add_argument("--session", metavar="FILE",
                   help="record every probe of a session file (saved by the app), exactly as the app runs them")
    p.add_argument("--filter", metavar="EXPR",
                   help="keep only events for which EXPR holds, on every probe given as SPEC, e.g. "
                        "'filename == \"/etc/hostname\"' (a session's probes keep their own filters)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the recording to create (refused if it exists)")
    p.add_argument("-d", "--duration", type=duration_arg, metavar="SECONDS", help="stop after this long")
    p.add_argument("-p", "--pid", type=pid_arg, help="trace only this process")
    p.add_argument("--ring-pages", type=int, metavar="N", help="pages per ring buffer (a power of two)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--trace-self", action="store_true", help="let probes see ktui's own process too")
    flight = p.add_argument_group(
        "flight recorder", "keep only the last SECONDS of events in memory; when an event matches the trigger, "
        "write the events of every probe from SECONDS before it to --after seconds after it, mark it, then stop "
        "(or re-arm, up to --keep triggers)")
    flight.add_argument("--ring", type=duration_arg, metavar="SECONDS", help="seconds of events kept before a trigger")
    flight.add_argument("--trigger", metavar="FILTER",
                        help="the filter language over a probe's recorded values, e.g. 'ret < 0 && comm == \"cat\"' "
                             "(probes that do not record a name it uses are not watched)")
    flight.add_argument("--after", type=_after_arg, metavar="SECONDS", default=0.0,
                        help="seconds of events kept after a trigger (default 0)")
    flight.add_argument("--keep", type=_keep_arg, metavar="N", default=1,
                        help="triggers to keep before stopping (default 1)")
    p.epilog = ("Add `-- COMMAND ARGS...` to start a command (held until the probes are attached) and trace it and "
                "every process it starts (a cgroup of its own; without a writable cgroup v2, its own process only, "
                "and a note says so). "
                "With --host, -o names a new directory that gets one recording per host (`ktui replay DIR`).")
    from ktui.commands.hosts import add_host_options

    add_host_options(p)
    p.set_defaults(run=run)


def _after_arg(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0.0") else duration_arg(text)


def _keep_arg(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= n <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{text} is out of range (1..1000000)")
    return n


def _check_flight(args: argparse.Namespace) -> None:
    """The flight recorder's options, checked before anything is attached."""
    ring, trigger = getattr(args, "ring", None), getattr(args, "trigger", None)
    if trigger is None and ring is None:
        if args.after or args.keep != 1:
            raise UsageError("--after and --keep belong to the flight recorder: add --ring SECONDS --trigger FILTER.")
        return
    if trigger is None:
        raise UsageError("--ring needs --trigger FILTER: the event whose window is kept.")
    if ring is None:
        raise UsageError("--trigger needs --ring SECONDS: how much before the trigger is kept.")
    if ring <= 0:
        raise UsageError("--ring must be a positive number of seconds.")
    from ktui.recording.flight import parse_trigger

    parse_trigger(trigger)  # said as the trigger's, not the probes' filter


def _check_output(path: str) -> None:
    if os.path.lexists(path):
        raise UsageError(f"{path} exists; choose another name (ktui record never overwrites).")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"cannot write {path}: the directory {parent} does not exist.")
    if not os.access(parent, os.W_OK):
        raise KtuiError(f"cannot write {path}: the directory {parent} is not writable.")


def _load_catalog() -> Catalog | None:
    """The kernel's catalog: globs, and names checked before anything compiles (optional)."""
    try:
        from ktui.catalog import Catalog

        return Catalog.load()
    except (KtuiError, ImportError, OSError):
        return None


def _parse_probes(specs: list[str], session: str | None = None, filter_text: str | None = None,
                  catalog: Catalog | None = None) -> list[Probe]:
    """The probes to record: a session file's (as saved) and those of the specs (with --filter).
    Names this machine does not have are refused here, in one sentence."""
    from ktui.probes.exists import check_all
    from ktui.probes.spec import parse_spec

    probes: list[Probe] = []
    if session is not None:
        from ktui.session import Session

        probes.extend(p for p in Session.load(session).probes if p.enabled)
    from_specs = []
    for text in specs:
        from_specs.extend(parse_spec(text, catalog))
    if filter_text is not None:
        from ktui.probes.filter import parse_filter

        parse_filter(filter_text)  # a malformed filter is one sentence before anything starts
        for probe in from_specs:
            probe.filter = filter_text
    probes.extend(from_specs)
    if not probes:
        raise UsageError("no probes given: name at least one SPEC or a --session file.")
    check_all(probes, catalog)
    return probes


class _Progress:
    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last: Update | None = None
        self._printed_at = 0.0
        self._prev = (time.monotonic(), 0)

    def sink(self, update: Update) -> None:
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
    if getattr(args, "host", None):
        if getattr(args, "trigger", None) is not None or getattr(args, "ring", None) is not None:
            raise UsageError("the flight recorder (--ring/--trigger) records this machine only, not --host.")
        from ktui.commands.hosts import record as record_hosts

        return record_hosts(args)
    # First thing: a signal while the probe modules load (a second or more) must end in a sentence too.
    shutdown = _Shutdown()
    shutdown.install()
    try:
        return _record(args, shutdown)
    finally:
        shutdown.phase = "done"
        # As the `ktui record` process: nothing is left to stop, and a late signal (a
        # supervisor's second SIGTERM) must not turn a finished recording's exit status into
        # a kill. SIG_IGN, because Python's finalization resets its own handlers to the
        # default (which kills) but leaves ignored signals ignored. Called in another
        # program's process (tests call main()), give that program its handlers back.
        if sys.argv[1:2] == ["record"]:
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
        else:
            shutdown.restore()


def _record(args: argparse.Namespace, shutdown: _Shutdown) -> int:
    progress = _Progress(args.quiet)
    flight: FlightRecorder | None = None
    recorder: RecordingWriter | FlightRecorder | None = None
    closed = False
    source = None
    try:
        if args.pid is not None and args.command_argv:
            raise UsageError("give either -p PID or -- COMMAND, not both.")
        if args.duration is not None and args.duration <= 0:
            raise UsageError("--duration must be a positive number of seconds.")
        _check_flight(args)
        _check_output(args.output)
        require_bpf("ktui record")
        catalog = _load_catalog()
        probes = _parse_probes(args.specs, args.session, args.filter, catalog)
        from ktui.sources.live import LiveSource
        from ktui.kernel import kernel_identity
        from ktui.probes.model import TargetProcess
        from ktui.recording import RecordingWriter

        target = None
        if args.pid is not None:
            target = TargetProcess(pid=args.pid)
        elif args.command_argv:
            target = TargetProcess(command=list(args.command_argv))
        source = LiveSource(probes, catalog=catalog, target=target, ring_pages=args.ring_pages,
                            trace_self=args.trace_self)
        source.prepare()
        failed = [state for state in source.states.values() if state.status == "failed"]
        for state in failed:
            print(f"ktui: {term_safe(state.spec)}: not recorded: {term_safe(state.reason)}", file=sys.stderr)
        if failed and len(failed) == len(source.states):
            raise KtuiError(f"nothing to record: {failed[0].spec}: {failed[0].reason}")
        if not args.quiet:
            for note in source.notes:  # fallbacks the compiler took (a kprobe placed on a tracepoint...)
                print(f"ktui: note: {term_safe(note)}", file=sys.stderr)
        meta: dict[str, Any] = {"argv": ["ktui", "record", *sys.argv[2:]] if sys.argv[1:2] == ["record"] else [],
                "specs": list(args.specs), "target_pid": source.target_pid, "notes": source.notes}
        if args.command_argv:
            meta["command"] = list(args.command_argv)
        by_id = source.models()
        shutdown.enter("creating")
        if args.trigger is not None:  # names the trigger uses, checked against the probes' records first
            from ktui.recording.flight import trigger_filters

            trigger_filters(args.trigger, source.layouts.values())
            meta["flight"] = {"trigger": args.trigger, "ring_s": args.ring, "after_s": args.after, "keep": args.keep}
        writer = RecordingWriter.create(args.output, kernel_identity(), list(source.layouts.values()), by_id, meta)
        recorder = writer
        if args.trigger is not None:
            from ktui.recording.flight import FlightRecorder

            flight = recorder = FlightRecorder(writer, source.layouts.values(), args.trigger, ring_s=args.ring,
                                               after_s=args.after, keep=args.keep)
            if not args.quiet:
                print(f"ktui: flight recorder: the last {args.ring:g} s kept in memory; watching "
                      f"{', '.join(term_safe(source.layouts[i].name) for i in flight.watched)} for "
                      f"{term_safe(args.trigger)}", file=sys.stderr)
        source.recorder = recorder
        shutdown.enter("recording")  # a signal that came while creating stops it here, file complete
        source.start(progress.sink)
        deadline = time.monotonic() + args.duration if args.duration else None
        while not source.finished.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            if source.recorder_error is not None:
                break
            if flight is not None:
                flight.poll()
                if flight.done.is_set():
                    break
            source.finished.wait(0.1)
            progress.show()
    except KeyboardInterrupt:
        if not shutdown.interrupted:  # raised by something else than our handler: still a stop
            shutdown.signal_name = "SIGINT"
    finally:
        # From here on signals are only counted: a second Ctrl-C or SIGTERM must not cut
        # the detaching or the finishing of the file short. (A plain attribute store: no
        # signal handler can run between entering this clause and it.)
        shutdown.phase = "finishing"
        try:
            if source is not None:
                source.stop()
        finally:  # the file is finished even when detaching reported an error
            if recorder is not None:
                try:
                    recorder.close()
                    closed = True
                except KtuiError as err:
                    print(f"ktui: {err}", file=sys.stderr)
    if source is not None and source.last_update is not None:
        progress.last = source.last_update
    if recorder is None:
        # Stopped before the file was created: say so, there is nothing to open.
        why = f"interrupted by {shutdown.signal_name}" if shutdown.interrupted else "stopped"
        print(f"ktui: {why} before the recording started: no file was written ({args.output} does not exist).",
              file=sys.stderr)
        return 130 if shutdown.interrupted else 1
    progress.show(force=True)
    if progress.tty and not args.quiet:
        sys.stderr.write("\n")
    hits, delivered, dropped = progress.totals()
    if shutdown.interrupted:
        why = "interrupted" + (f" ({shutdown.count} signals; the later ones waited for the file)"
                               if shutdown.count > 1 else "")
    else:
        why = term_safe((source.last_update.message if source is not None and source.last_update else "") or "done")
    if not closed:
        print(f"ktui: {why}: the recording {term_safe(args.output)} is incomplete (it could not be finished); replay "
              f"shows what it holds", file=sys.stderr)
        return 1
    if flight is not None:
        fired = len(flight.marks)
        if fired:
            print(f"ktui: {'the trigger fired' if fired == 1 else f'the trigger fired {fired} times'}: "
                  f"{flight.events_kept:,} events of {flight.events_seen:,} seen written to {term_safe(args.output)} "
                  f"(the window{'s' if fired > 1 else ''} around it, marked), complete", file=sys.stderr)
        else:
            print(f"ktui: {why}: the trigger never fired: {term_safe(args.output)} holds no events "
                  f"({flight.events_seen:,} seen, none kept)", file=sys.stderr)
    elif not args.quiet or shutdown.interrupted:
        print(f"ktui: {why}: {delivered:,} events of {hits:,} hits written to {term_safe(args.output)}, complete"
              + (f"; {dropped:,} dropped by full ring buffers" if dropped else ""), file=sys.stderr)
    if source is not None and source.recorder_error is not None:
        raise source.recorder_error
    return 0
