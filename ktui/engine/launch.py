"""Starting a traced command stopped until its probes are attached (stap -c, bpftrace -c).

The child is forked and blocks reading a pipe before exec; releasing it writes one
byte. Its pid is known before it runs, so filters and uprobes can name it. Before it runs it is
put into a cgroup of its own (``cgroup.py``), so the probes follow it and every process it starts;
where that cannot be, ``follow_error`` says why (the command's own process is traced then).
"""

from __future__ import annotations

import os
import shutil
import signal

from ktui.engine.cgroup import CommandCgroup
from ktui.errors import KtuiError, UsageError


class StoppedCommand:
    def __init__(self, argv: list[str]):
        if not argv:
            raise UsageError("no command given after --.")
        exe = argv[0] if "/" in argv[0] else shutil.which(argv[0])
        if not exe or not os.access(exe, os.X_OK):
            raise UsageError(f"cannot run {argv[0]!r}: no such program in PATH.")
        self.argv = argv
        read_fd, self._go = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: wait for the go byte, then become the command
            try:
                os.close(self._go)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                if os.read(read_fd, 1) != b"1":
                    os._exit(125)  # the tracer gave up before starting us
                os.close(read_fd)
                os.execv(exe, argv)
            except BaseException:
                pass
            os._exit(127)
        os.close(read_fd)
        self.pid = pid
        self.returncode: int | None = None
        self.cgroup: CommandCgroup | None = None
        self.follow_error: str | None = None
        try:
            self.cgroup = CommandCgroup.create(pid)
        except KtuiError as err:
            self.follow_error = str(err)

    @property
    def released(self) -> bool:
        return self._go < 0

    def release(self) -> None:
        if self._go >= 0:
            os.write(self._go, b"1")
            os.close(self._go)
            self._go = -1

    def abandon(self) -> None:
        """The tracer failed: let the child exit without running the command."""
        if self._go >= 0:
            os.close(self._go)
            self._go = -1
        self.wait()

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                self._ended()
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            try:
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                self.returncode = -1
            self._ended()
        return self.returncode

    def _ended(self) -> None:
        if self.cgroup is not None:
            self.cgroup.remove()  # kept by a process the command left running, and only then
