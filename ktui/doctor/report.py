"""Doctor's answer: one check per mechanism or fact, each with a verdict, a reason and evidence.

The JSON form is stable: a top-level object whose keys are check names and whose
values are always ``{"ok": true|false|null, "why": str, "evidence": [str], "value": str|null}``.
``ok`` is null only where the truth cannot be known (``why`` says why).
New checks may be added; existing keys and field types do not change.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from dataclasses import dataclass, field

# Checks in the order a person reads them: who am I, what can the kernel do, what ktui brings.
ORDER = (
    "kernel",
    "root",
    "capabilities",
    "bpf_syscall",
    "btf",
    "kprobe",
    "kretprobe",
    "fentry",
    "tracepoint",
    "raw_tracepoint",
    "uprobe",
    "perf_event",
    "hardware_events",
    "ringbuf",
    "stack_map",
    "lockdown",
    "kptr_restrict",
    "perf_event_paranoid",
    "tracefs",
    "available_filter_functions",
    "kprobe_blacklist",
    "bcc",
    "headers",
)

# The mechanisms ktui attaches probes with (the rest are facts about the machine).
MECHANISMS = ("kprobe", "kretprobe", "fentry", "tracepoint", "raw_tracepoint", "uprobe", "perf_event")


@dataclass
class Check:
    ok: bool | None
    why: str
    evidence: list[str] = field(default_factory=list)
    value: str | None = None  # the measured value where there is one (a version, a mode, a sysctl)

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "why": self.why, "evidence": list(self.evidence), "value": self.value}


@dataclass
class Report:
    checks: dict[str, Check] = field(default_factory=dict)

    def ordered(self) -> list[tuple[str, Check]]:
        names = [n for n in ORDER if n in self.checks] + [n for n in self.checks if n not in ORDER]
        return [(n, self.checks[n]) for n in names]

    def to_dict(self) -> dict[str, dict[str, object]]:
        return {name: check.to_dict() for name, check in self.ordered()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def works(self, name: str) -> bool:
        check = self.checks.get(name)
        return bool(check and check.ok)


def verdict(ok: bool | None) -> str:
    return {True: "yes", False: "no", None: "?"}[ok]


def render_table(report: Report, width: int | None = None, evidence: bool = False) -> str:
    """Mechanism, yes/no, why; wrapped to the terminal."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    names = [n for n, _ in report.ordered()]
    name_w = max(len(n) for n in names) if names else 10
    indent = " " * (name_w + 7)
    lines = [f"{'mechanism':<{name_w}}  {'ok':<3}  why", f"{'-' * name_w}  ---  {'-' * max(3, width - name_w - 8)}"]
    for name, check in report.ordered():
        body = textwrap.wrap(check.why, max(20, width - len(indent))) or [""]
        lines.append(f"{name:<{name_w}}  {verdict(check.ok):<3}  {body[0]}")
        lines += [indent + rest for rest in body[1:]]
        if evidence:
            for item in check.evidence:
                for i, part in enumerate(textwrap.wrap(item, max(20, width - len(indent) - 2)) or [""]):
                    lines.append(indent + ("- " if i == 0 else "  ") + part)
    return "\n".join(lines)
