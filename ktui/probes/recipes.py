"""Recipes: the classic BCC tools as probes a person can open, read and edit.

Each recipe lists ways to build the tool, best first; ``choose`` takes the first this kernel
offers (a tracepoint that exists, kprobes when the kernel has them) and says which it took and
why. The result is plain probes of the probe model, so the editor, sessions and the compiler
treat them like any other. Where ktui's probe model cannot express a tool exactly (run-queue
and block-I/O latency pair two different events by a key), the recipe says what it measures
instead, in its note.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ktui.probes.model import Action, ActionKind, Arg, Fetch, Probe, ProbeKind, ValueType

TRACEFS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))


@dataclass(frozen=True)
class Capabilities:
    """What this kernel offers a recipe: tracepoints that exist, and whether kprobes attach."""

    has_tracepoint: Callable[[str], bool]
    kprobes: bool

    @classmethod
    def of_this_kernel(cls, tracefs: tuple[Path, ...] = TRACEFS) -> Capabilities:
        root = next((p for p in tracefs if (p / "events").is_dir()), None)

        def has_tracepoint(name: str) -> bool:
            category, _, event = name.partition(":")
            return root is not None and (root / "events" / category / event).is_dir()

        kprobes = root is not None and (root / "kprobe_events").exists()
        return cls(has_tracepoint, kprobes)


@dataclass(frozen=True)
class Way:
    """One way to build a recipe: its probes and what it needs from the kernel."""

    mechanism: str  # shown: "tracepoint syscalls:sys_enter_openat"
    build: Callable[[], list[Probe]]
    tracepoints: tuple[str, ...] = ()
    needs_kprobes: bool = False

    def available(self, caps: Capabilities) -> str | None:
        """None when this way works here, else why not."""
        if self.needs_kprobes and not caps.kprobes:
            return "this kernel has no kprobes"
        missing = [t for t in self.tracepoints if not caps.has_tracepoint(t)]
        if missing:
            return f"this kernel has no tracepoint {missing[0]}"
        return None


@dataclass(frozen=True)
class Recipe:
    name: str  # the BCC tool's name
    summary: str
    ways: tuple[Way, ...]
    note: str = ""  # what the recipe measures when it differs from the BCC tool


@dataclass
class Chosen:
    recipe: Recipe
    probes: list[Probe]
    mechanism: str  # the way taken, "" when none works here
    reason: str  # one sentence: which way and why, or why none
    skipped: list[str] = field(default_factory=list)  # better ways this kernel does not offer, with why


def choose(recipe: Recipe, caps: Capabilities) -> Chosen:
    skipped: list[str] = []
    for way in recipe.ways:
        why_not = way.available(caps)
        if why_not is None:
            reason = f"{recipe.name}: uses {way.mechanism}"
            if skipped:
                reason += f" (better ways are unavailable: {'; '.join(skipped)})"
            elif len(recipe.ways) > 1:
                reason += " (the best way this kernel offers)"
            return Chosen(recipe, way.build(), way.mechanism, reason + ".", skipped)
        skipped.append(f"{way.mechanism}: {why_not}")
    return Chosen(recipe, [], "", f"{recipe.name} cannot run here: {'; '.join(skipped)}.", skipped)


# --- the recipes ------------------------------------------------------------------------------

def _tp(target: str, name: str, fetches: list[Fetch], actions: list[Action], filter: str = "") -> Probe:
    return Probe(ProbeKind.TRACEPOINT, target, name=name, fetches=fetches, actions=actions, filter=filter,
                 source=f"tracepoint:{target}")


def _field(name: str, vtype: str | None = None) -> Fetch:
    return Fetch(name, Arg(name=name), ValueType.parse(vtype) if vtype else None)


STREAM = Action(ActionKind.STREAM)


def _opensnoop_tp() -> list[Probe]:
    return [_tp("syscalls:sys_enter_openat", "opensnoop", [_field("filename", "ustring"), _field("flags")],
                [STREAM, Action(ActionKind.COUNT, key=("comm",))])]


def _opensnoop_kp() -> list[Probe]:
    return [Probe(ProbeKind.KPROBE, "do_sys_openat2", name="opensnoop",
                  fetches=[Fetch("filename", Arg(index=2), ValueType.parse("ustring"))],
                  actions=[STREAM, Action(ActionKind.COUNT, key=("comm",))], source="kprobe:do_sys_openat2")]


def _execsnoop() -> list[Probe]:
    return [_tp("syscalls:sys_enter_execve", "execsnoop", [_field("filename", "ustring")],
                [STREAM, Action(ActionKind.COUNT, key=("comm",))])]


def _exitsnoop() -> list[Probe]:
    return [_tp("sched:sched_process_exit", "exitsnoop", [], [STREAM, Action(ActionKind.COUNT, key=("comm",))])]


def _runqlat_kp() -> list[Probe]:
    return [Probe(ProbeKind.KPROBE, "schedule", name="runqlat", latency=True,
                  actions=[Action(ActionKind.HIST, value="latency")], source="kprobe:schedule")]


def _runqlat_tp() -> list[Probe]:
    return [_tp("sched:sched_wakeup", "runqlat_wakeups", [], [Action(ActionKind.COUNT, key=("cpu",))]),
            _tp("sched:sched_switch", "runqlat_switches", [], [Action(ActionKind.COUNT, key=("cpu",))])]


def _biolatency_kp() -> list[Probe]:
    return [Probe(ProbeKind.KPROBE, "blk_mq_submit_bio", name="biolatency", latency=True,
                  actions=[Action(ActionKind.HIST, value="latency")], source="kprobe:blk_mq_submit_bio")]


def _biolatency_tp() -> list[Probe]:
    return [_tp("block:block_rq_complete", "biolatency_sizes", [_field("nr_sector")],
                [Action(ActionKind.HIST, value="nr_sector"), Action(ActionKind.COUNT, key=("cpu",))])]


def _tcpconnect_tp() -> list[Probe]:
    # newstate 2 is TCP_SYN_SENT: the moment a connect() starts, as BCC's tcpconnect reports it.
    return [_tp("sock:inet_sock_set_state", "tcpconnect", [_field("dport"), _field("family"), _field("newstate")],
                [STREAM, Action(ActionKind.COUNT, key=("comm", "dport"))], filter="newstate == 2")]


def _tcpconnect_kp() -> list[Probe]:
    return [Probe(ProbeKind.KPROBE, "tcp_v4_connect", name="tcpconnect",
                  actions=[STREAM, Action(ActionKind.COUNT, key=("comm",))], source="kprobe:tcp_v4_connect")]


def _profile() -> list[Probe]:
    return [Probe(ProbeKind.PROFILE, "", name="profile", frequency=49,
                  actions=[Action(ActionKind.STACKS, kernel_stack=True, user_stack=True)], source="profile:hz:49")]


def _syscount() -> list[Probe]:
    return [_tp("raw_syscalls:sys_enter", "syscount", [_field("id")], [Action(ActionKind.COUNT, key=("id",)),
                                                                          Action(ActionKind.COUNT, key=("comm",))])]


RECIPES: tuple[Recipe, ...] = (
    Recipe("opensnoop", "files opened, by whom", (
        Way("tracepoint syscalls:sys_enter_openat", _opensnoop_tp, ("syscalls:sys_enter_openat",)),
        Way("kprobe do_sys_openat2", _opensnoop_kp, needs_kprobes=True))),
    Recipe("execsnoop", "programs started (execve)", (
        Way("tracepoint syscalls:sys_enter_execve", _execsnoop, ("syscalls:sys_enter_execve",)),)),
    Recipe("exitsnoop", "processes exiting", (
        Way("tracepoint sched:sched_process_exit", _exitsnoop, ("sched:sched_process_exit",)),)),
    Recipe("runqlat", "scheduler latency", (
        Way("kprobe schedule with latency (time inside schedule(): off-CPU time per call)", _runqlat_kp,
            needs_kprobes=True),
        Way("tracepoints sched:sched_wakeup and sched:sched_switch counted per CPU", _runqlat_tp,
            ("sched:sched_wakeup", "sched:sched_switch"))),
        note="BCC's runqlat pairs each wakeup with the switch that runs the task; ktui's probes pair a "
             "function's entry with its return, so this shows the nearest measure the kernel allows."),
    Recipe("biolatency", "block I/O", (
        Way("kprobe blk_mq_submit_bio with latency", _biolatency_kp, needs_kprobes=True),
        Way("tracepoint block:block_rq_complete, a histogram of request sizes (sectors)", _biolatency_tp,
            ("block:block_rq_complete",))),
        note="BCC's biolatency pairs each request's issue with its completion; this shows the nearest "
             "measure the kernel allows."),
    Recipe("tcpconnect", "outgoing TCP connections", (
        Way("tracepoint sock:inet_sock_set_state (state SYN_SENT)", _tcpconnect_tp, ("sock:inet_sock_set_state",)),
        Way("kprobe tcp_v4_connect", _tcpconnect_kp, needs_kprobes=True))),
    Recipe("profile", "CPU samples with kernel and user stacks at 49 Hz", (
        Way("perf sampling (profile:hz:49)", _profile),)),
    Recipe("syscount", "system calls counted by number and by process", (
        Way("tracepoint raw_syscalls:sys_enter", _syscount, ("raw_syscalls:sys_enter",)),)),
)


def recipe(name: str) -> Recipe:
    for r in RECIPES:
        if r.name == name:
            return r
    raise KeyError(name)
