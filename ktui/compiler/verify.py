"""Load every function of a compiled program into the kernel's verifier, without
attaching anything, and say in plain words which probe and fetch it refused."""

from __future__ import annotations

import errno
import functools
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ktui.errors import CapabilityError, KtuiError

from ktui.compiler.program import AttachPlan, CompiledProgram


class VerifyError(KtuiError):
    """The compiler or the verifier refused a probe's program; ``detail`` holds the raw log."""


@dataclass
class CheckResult:
    probe_id: int
    fn_name: str
    ok: bool
    message: str = ""  # one sentence when refused
    log: str = ""  # the raw compiler/verifier output


@contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Collect what libbcc and clang write to fd 2 (they bypass sys.stderr)."""
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        box: list[str] = []
        try:
            yield box
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            box.append(tmp.read().decode("utf-8", "replace"))


def bpf_class() -> Any:
    """BCC's BPF with its load-time auto-attach turned off: every program is attached
    explicitly by the engine, so kfunc__ names (which libbcc needs for fentry) stay inert."""
    from ktui.bccload import load_bcc

    bcc: Any = load_bcc()

    # BCC ships no type information: its BPF class is Any to mypy, which refuses subclassing Any.
    class QuietBPF(bcc.BPF):  # type: ignore[misc]
        def _trace_autoload(self) -> None:  # noqa: D401 - BCC's hook
            return None

    return QuietBPF


def _probe_at_line(text: str, line_no: int) -> tuple[int | None, str | None]:
    lines = text.splitlines()
    fetch = None
    if 1 <= line_no <= len(lines):
        m = re.search(r"// ktui:fetch (\w+)", lines[line_no - 1])
        fetch = m.group(1) if m else None
    for i in range(min(line_no, len(lines)) - 1, -1, -1):
        m = re.match(r"/\* ---- probe (\d+):", lines[i])
        if m:
            return int(m.group(1)), fetch
    return None, fetch


def compile_module(prog: CompiledProgram, cflags: list[str] | None = None) -> Any:  # BCC's BPF (no types)
    """The BPF object for ``prog`` (clang run, nothing loaded yet); VerifyError naming the probe on failure."""
    from ktui.headers import ensure_headers

    ensure_headers()
    BPF = bpf_class()
    with captured_stderr() as out:
        try:
            return BPF(text=prog.c_text.encode(), cflags=cflags or [])
        except Exception:  # BCC raises bare Exception; the reason is in its stderr output
            pass
    log = out[0] if out else ""
    first = next((line for line in log.splitlines() if ": error:" in line), "")
    m = re.match(r".*?:(\d+):(\d+): error: (.*)", first)
    if m:
        pid, fetch = _probe_at_line(prog.c_text, int(m.group(1)))
        who = _who(prog, pid, fetch)
        raise VerifyError(f"{who}the generated C does not compile: {m.group(3)}", detail=log)
    raise VerifyError("BCC could not compile the generated program" + (f": {log.strip().splitlines()[-1]}" if log.strip() else ""),
                      detail=log)


def _who(prog: CompiledProgram, pid: int | None, fetch: str | None) -> str:
    if pid is None or pid >= len(prog.probes):
        return ""
    cp = prog.probes[pid]
    return f"probe {pid} ({cp.probe.spec})" + (f", fetch {fetch}" if fetch else "") + ": "


def _verifier_sentence(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    skip = ("bpf: Failed to load program", "processed ", "HINT:", "verification time")
    useful = [line for line in lines if not line.startswith(skip) and not re.match(r"^\d+: \(", line) and not line.startswith(";")]
    return useful[-1] if useful else (lines[-1] if lines else "no log")


def _fetch_in_log(log: str) -> str | None:
    found = None
    for line in log.splitlines():
        m = re.search(r"// ktui:fetch (\w+)", line)
        if m:
            found = m.group(1)
    return found


def load_function(b: Any, plan: AttachPlan) -> tuple[bool, str, str]:  # b: BCC's BPF (no types)
    """(ok, sentence, raw log) for loading one function into the verifier."""
    from ktui.bccload import load_bcc

    prog_type = getattr(load_bcc().BPF, plan.prog_type)
    with captured_stderr() as out:
        try:
            b.load_func(plan.fn_name.encode(), prog_type)
            ok, err = True, None
        except Exception as exc:  # BCC raises bare Exception
            ok, err = False, exc
    log = out[0] if out else ""
    if ok:
        return True, "", log
    if "Need super-user" in str(err) or "Permission denied" in log or "Operation not permitted" in log:
        if plan.prog_type == "TRACING":
            return False, ("this kernel refuses fentry/fexit programs (loading returned EPERM, "
                           "a kernel policy); use a kprobe, or the system call's tracepoint"), log
        if os.geteuid() != 0:
            return False, "loading BPF programs needs root (or CAP_BPF and CAP_PERFMON)", log
    if "Argument list too long" in log:
        # libbcc reports E2BIG as "program too large" without the log; for programs far
        # below the size limit it is the verifier giving up on too many paths.
        return False, ("the kernel's verifier gave up on it (E2BIG): too many paths to check, "
                       "usually a long filter; simplify the filter or split the probe"), log
    return False, f"the kernel's verifier refused it: {_verifier_sentence(log or str(err))}", log


def check_program(prog: CompiledProgram) -> list[CheckResult]:
    """Compile once and load every function of every probe (nothing is attached)."""
    b = compile_module(prog)
    results = []
    try:
        for cp in prog.probes:
            if cp.attach.kind == "none":
                continue
            for plan in cp.attach_plans:
                ok, sentence, log = load_function(b, plan)
                if ok:
                    results.append(CheckResult(cp.probe_id, plan.fn_name, True, log=log))
                    continue
                fetch = _fetch_in_log(log)
                who = f"probe {cp.probe_id} ({cp.probe.spec})" + (f", fetch {fetch}" if fetch else "")
                results.append(CheckResult(cp.probe_id, plan.fn_name, False, f"{who}: {sentence}", log))
    finally:
        b.cleanup()
    return results


def verify_program(prog: CompiledProgram) -> None:
    """Raise VerifyError (raw logs in ``detail``) when any function is refused."""
    results = check_program(prog)
    bad = [r for r in results if not r.ok]
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise VerifyError(bad[0].message + more, detail="\n\n".join(f"== {r.fn_name}\n{r.log}" for r in bad))


@functools.lru_cache(maxsize=1)
def fentry_loads() -> tuple[bool, str]:
    """Whether this kernel loads an fentry program (once per process): (yes?, why not)."""
    if os.geteuid() != 0:
        return False, "not checked: loading BPF needs root"
    try:
        from ktui.headers import ensure_headers

        ensure_headers()
        BPF = bpf_class()
        with captured_stderr():
            b = BPF(text=b"int kfunc__schedule(u64 *ctx) { return 0; }")
    except (KtuiError, CapabilityError) as err:
        return False, f"not checked: {err}"
    except Exception as err:  # BCC's bare Exception
        return False, f"not checked: {err}"
    try:
        from ktui.bccload import load_bcc

        with captured_stderr() as out:
            try:
                b.load_func(b"kfunc__schedule", load_bcc().BPF.TRACING)
                return True, ""
            except Exception:
                pass
        log = out[0] if out else ""
        if "Permission denied" in log or "Operation not permitted" in log:
            return False, f"EPERM: {os.strerror(errno.EPERM)}, a kernel policy"
        return False, _verifier_sentence(log)
    finally:
        b.cleanup()
