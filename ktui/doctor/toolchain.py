"""What ktui brings to the kernel: BCC and the kernel headers it compiles against,
proved by compiling (and, with privileges, attaching) one tiny program."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from ktui.doctor.facts import Privileges
from ktui.doctor.report import Check
from ktui.errors import KtuiError

# One tiny program; the name has no BCC autoload prefix, so nothing attaches until we say so.
TEST_PROGRAM = "int ktui_doctor_tp(void *ctx) { return 0; }\n"
TEST_TRACEPOINT = "syscalls:sys_enter_getppid"
STILL_WORKS_WITHOUT_BCC = "browsing, compiling and replaying recordings still work"


@contextlib.contextmanager
def captured_output() -> Iterator[list[str]]:
    """Collect what libbcc, clang and modprobe print on file descriptors 1 and 2
    (libbcc writes "Unable to find kernel headers" to stdout), so the report and
    ``--json`` stay clean. The descriptors are swapped for a moment: in the app,
    run the compile check before the screen starts, or pass compile_check=False."""
    lines: list[str] = []
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    with tempfile.TemporaryFile() as tmp:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            yield lines
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            tmp.seek(0)
            lines.extend(ln for ln in tmp.read().decode(errors="replace").splitlines() if ln.strip())


def _first_error(lines: list[str], fallback: str) -> str:
    for line in lines:
        if "error:" in line:
            return line.strip()
    return lines[0].strip() if lines else fallback


def bcc_and_headers(priv: Privileges, compile_check: bool = True) -> tuple[Check, Check]:
    """(bcc check, headers check)."""
    from ktui import bccload, headers

    try:
        bcc = bccload.load_bcc()
    except bccload.BccUnavailable as err:
        bcc_check = Check(False, str(err), [f"searched: {os.environ.get('KTUI_BCC_PATH') or ', '.join(bccload._CANDIDATE_DIRS[:3])}"])
        bcc = None
    else:
        version = bccload.bcc_version()
        bcc_check = Check(True, f"BCC {version} from {bccload.find_bcc_dir()}", [f"bcc module: {getattr(bcc, '__file__', '?')}"], value=version)

    try:
        found = headers.find_headers()
    except OSError as err:  # a broken cache or /usr/src: still one sentence
        found = None
        headers_err = str(err)
    else:
        headers_err = ""
    release = os.uname().release
    if found is None:
        head = Check(
            False,
            f"no kernel headers for {release} and no fallback (install linux-headers-{release}, or the "
            "distribution's generic headers): BCC cannot compile probes; browsing and replay still work",
            [headers_err] if headers_err else ["/lib/modules/<release>/build absent, no CONFIG_IKHEADERS, no /usr/src/linux-headers-*"],
        )
        return bcc_check, head
    head = Check(True, found.describe(), [f"{found.kind}: {found.path}"], value=found.kind)
    if not found.matches_kernel:
        head.why = (
            f"the distribution's generic headers ({found.path}), not the running kernel's ({release}): tracepoint "
            "fields, registers and helpers are right, but struct layouts taken from them are unreliable"
        )
    if bcc is None or not compile_check:
        return bcc_check, head
    _compile_and_attach(bcc, headers, priv, bcc_check, head)
    return bcc_check, head


def _compile_and_attach(bcc: Any, headers: ModuleType, priv: Privileges, bcc_check: Check, head: Check) -> None:
    try:
        chosen = headers.ensure_headers()
    except (KtuiError, OSError) as err:
        head.ok = False
        head.why = str(err)
        if head.value == "generic":
            head.why += " (KTUI_CACHE_DIR chooses a writable place): until then BCC cannot compile probes; browsing and replay still work"
        return
    if chosen.kind == "generic":
        head.evidence.append(f"merged tree: BCC_KERNEL_SOURCE={os.environ.get('BCC_KERNEL_SOURCE', '')}")
    start = time.perf_counter()
    program = None
    with captured_output() as noise:
        try:
            program = bcc.BPF(text=TEST_PROGRAM.encode())
        except Exception as err:  # BCC raises bare Exception on a failed compile
            failure = err
    compile_s = time.perf_counter() - start
    if program is None:
        first = _first_error(noise, str(failure))
        head.ok = False
        head.why = (
            f"BCC could not compile a test program with {chosen.describe()} (first error: {first}); "
            "live tracing will not work until the headers are fixed; browsing and replay still work"
        )
        head.evidence += noise[:5]
        bcc_check.why += "; but it cannot compile with these headers (see headers)"
        return
    head.evidence.append(f"BCC compiled a test program with them in {compile_s:.2f} s")
    try:
        if not priv.can_bpf:
            bcc_check.why += ", compiled a test program (loading it needs root)"
            return
        try:
            with captured_output():
                program.load_func(b"ktui_doctor_tp", bcc.BPF.TRACEPOINT)
                program.attach_tracepoint(tp=TEST_TRACEPOINT.encode(), fn_name=b"ktui_doctor_tp")
        except Exception as err:  # BCC's attach errors are bare Exceptions too
            bcc_check.ok = False
            bcc_check.why = f"BCC compiled a test program but could not load or attach it to {TEST_TRACEPOINT}: {err}"
            return
        bcc_check.why += f", compiled, loaded and attached a test program to {TEST_TRACEPOINT}"
        bcc_check.evidence.append(f"compile {compile_s:.2f} s, attach and detach ok")
    finally:
        program.cleanup()
