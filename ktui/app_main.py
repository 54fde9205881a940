"""Starting the app: live when this machine can trace, else the bundled demo read-only.

``ktui [--session FILE] [--demo]`` -> ``run_app``; ``ktui replay FILE...`` -> ``run_replay``.
Whatever happens, the source is stopped before returning, so no probe stays loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from ktui.errors import KtuiError
from ktui.probes.model import Action, ActionKind, Arg, Fetch, Probe, ProbeKind, ValueType, stacks_action

DEMO_RECORDING = Path(__file__).resolve().parent / "data" / "demo.ktrec"


def default_probes() -> list[Probe]:
    """A session that makes every pane come alive at once on an idle machine."""
    return [
        Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_openat",
              fetches=[Fetch("filename", Arg(name="filename"), ValueType.parse("ustring"))],
              actions=[Action(ActionKind.STREAM), Action(ActionKind.COUNT, key=("cpu",))]),
        Probe(ProbeKind.TRACEPOINT, "sched:sched_switch", actions=[Action(ActionKind.COUNT, key=("cpu",))]),
        Probe(ProbeKind.PROFILE, "", frequency=49, actions=[stacks_action(ProbeKind.PROFILE)]),  # user stacks too
    ]


def live_unavailable() -> str | None:
    """The sentence saying why live tracing cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "it needs root (BPF programs need CAP_BPF and CAP_PERFMON); run ktui with sudo."
    from ktui.engine.ringbuf import check_memory_ordering

    try:
        check_memory_ordering()
    except KtuiError as err:
        return str(err)
    try:
        from ktui.bccload import load_bcc

        load_bcc()
    except KtuiError as err:
        return str(err)
    except Exception as err:  # BccUnavailable may not be a KtuiError
        return f"BCC is not usable: {err}"
    try:
        from ktui.headers import ensure_headers

        ensure_headers()
    except Exception as err:
        return str(err)
    return None


TRACING_SELF = "tracing ktui itself (--trace-self)"


def _warnings_with(first: str):
    return lambda: [first, *_warnings()]


def _warnings() -> list[str]:
    """The doctor's short warnings for the status line (runs in a worker: it probes the kernel)."""
    try:
        from ktui.doctor import diagnose, summary_warnings

        return list(summary_warnings(diagnose(compile_check=False)))
    except Exception:  # the doctor is advice: its absence never stops the app
        return []


def _catalog_loader():
    def load():
        from ktui.catalog import Catalog

        return Catalog.load()
    return load


def _load_session(path: str):
    """The session file (one sentence when it is malformed), its probes checked against this machine."""
    from ktui.session import Session

    session = Session.load(path)
    probes = list(session.probes)
    try:
        from ktui.catalog import Catalog

        catalog = Catalog.load()
    except Exception:  # the catalog is optional: without it only programs and symbols are checked
        catalog = None
    from ktui.probes.exists import check_all

    check_all(probes, catalog)  # a name this machine lacks: one sentence before the app starts
    return session


def _live_factory(probes: list[Probe], trace_self: bool = False, target=None):
    from ktui.sources.live import LiveSource

    # A session's target pid applies; a target command is kept but not started by the app (its output
    # would land on the app's terminal): the app says so.
    pid_target = target if target is not None and target.pid is not None else None
    return LiveSource(list(probes), trace_self=trace_self, target=pid_target)


def _replay_source(paths: list[str]):
    from ktui.sources.replay import ReplaySource

    return ReplaySource([str(p) for p in paths])


def _run(app) -> int:
    try:
        app.run()
    finally:
        app.stop_source()  # q, Ctrl-C and SIGTERM all end here: detach everything
    return int(app.return_code or 0)


def run_app(args) -> int:
    from ktui.app import KtuiApp

    session = getattr(args, "session", None)
    loaded = _load_session(session) if session and Path(session).exists() else None
    probes = list(loaded.probes) if loaded is not None else default_probes()
    target = loaded.target if loaded is not None else None
    why = "You asked for the demo (--demo)." if getattr(args, "demo", False) else live_unavailable()
    if why is None:
        trace_self = bool(getattr(args, "trace_self", False))
        app = KtuiApp(probes=probes, source_factory=lambda ps: _live_factory(ps, trace_self, target),
                      catalog_loader=_catalog_loader(), mode="live", session_path=session, session=loaded,
                      warnings=[TRACING_SELF] if trace_self else None,
                      warnings_loader=_warnings_with(TRACING_SELF) if trace_self else _warnings)
        return _run(app)
    banner = f"Live tracing is unavailable: {why} Showing the bundled demo recording, read-only."
    source = None
    if DEMO_RECORDING.exists():
        try:
            source = _replay_source([str(DEMO_RECORDING)])
        except KtuiError as err:
            banner = f"Live tracing is unavailable: {why} The demo recording cannot be opened: {err}"
    else:
        banner = f"Live tracing is unavailable: {why} The demo recording is not bundled in this build."
    app = KtuiApp(source=source, mode="demo", banner=banner, catalog_loader=_catalog_loader(), warnings_loader=_warnings)
    return _run(app)


def run_replay(args) -> int:
    from ktui.app import KtuiApp

    source = _replay_source(list(args.files))  # a bad file stops here with its one sentence
    names = ", ".join(Path(f).name for f in args.files)
    app = KtuiApp(source=source, mode="replay", banner=f"Replaying {names} (read-only).")
    return _run(app)
