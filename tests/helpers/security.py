"""Security regression helpers: a second, unprivileged user the test creates and removes, and the
real `ktui` in a pseudo-terminal whose RAW output bytes are kept (what the terminal would obey,
before any terminal emulator has rendered it)."""

from __future__ import annotations

import fcntl
import os
import pwd
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Iterator

KTUI = Path(sys.executable).with_name("ktui")


@contextmanager
def unprivileged_user() -> Iterator[pwd.struct_passwd]:
    """A fresh system user with no home and no shell; removed afterwards whatever happens."""
    if os.geteuid() != 0:
        raise AssertionError("this security test creates a user: it needs root")
    name = f"ktuit{os.getpid() % 100000}"
    subprocess.run(["userdel", name], capture_output=True)  # a leftover of a killed run
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def run_as(user: pwd.struct_passwd, argv: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(argv, user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd="/",
                            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}, **kwargs)


class PtyApp:
    """`ktui ARGS` on a pseudo-terminal of ``cols`` x ``rows``; ``raw`` holds every byte it wrote."""

    def __init__(self, args: list[str], cols: int = 120, rows: int = 40, cwd: str | None = None) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        env["TERM"] = "xterm-256color"
        self.proc = subprocess.Popen([str(KTUI), *args], stdin=slave, stdout=slave, stderr=slave, cwd=cwd,
                                     env=env, start_new_session=True, close_fds=True)
        os.close(slave)
        self.raw = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the other side is closed
                return
            if not chunk:
                return
            with self._lock:
                self.raw += chunk

    def output(self) -> bytes:
        with self._lock:
            return bytes(self.raw)

    def wait_for(self, needle: bytes, timeout: float = 60.0) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output()
            if needle in out:
                return out
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.2)
        raise AssertionError(f"{needle!r} never reached the terminal; the last bytes were:\n"
                             f"{self.output()[-3000:]!r}")

    def send(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.send(b"q")
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
        self._reader.join(5)
        os.close(self.master)
        return self.proc.returncode
