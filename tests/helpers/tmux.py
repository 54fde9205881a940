"""Driving the real ktui in tmux as a person does: send keys, read the screen, find ktui's pid.
One private tmux session per test module (named by the caller), never the default server's others."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

_STYLE = re.compile(r"\x1b\[[0-9;:]*m")


class Tmux:
    """One tmux session: run tmux commands on it, read its screen, wait for what a person waits for."""

    def __init__(self, session: str, *, wait_s: float = 60.0, socket: str | None = None) -> None:
        self.session = session
        self.wait_s = wait_s
        self.socket = socket  # a private tmux server (-L), or None for the default one

    def run(self, *args: str, check: bool = True) -> str:
        server = ["-L", self.socket] if self.socket else []
        return subprocess.run(["tmux", *server, *args], check=check, capture_output=True, text=True).stdout

    def new_session(self, *args: str) -> None:
        """A fresh session of this name (an old one is killed first). On a private server the server
        is told to stay when its last session goes (exit-empty off; kill_server ends it): killing the
        only session made the server exit, and a new-session racing that exit failed with "server
        exited unexpectedly" (seen in the stories under load)."""
        self.run("kill-session", "-t", self.session, check=False)
        self.run("new-session", "-d", "-s", self.session, *args)
        if self.socket:
            self.run("set-option", "-g", "exit-empty", "off")

    def kill_server(self) -> None:
        """End the private server (never the default one, which other sessions may share) and remove
        its socket file (tmux leaves it behind)."""
        if self.socket:
            path = self.run("display-message", "-p", "#{socket_path}", check=False).strip()
            self.run("kill-server", check=False)
            if path.endswith(f"/{self.socket}"):
                Path(path).unlink(missing_ok=True)

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", "-t", self.session, *(["-l"] if literal else []), *keys)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session)

    def wait(self, predicate, timeout: float | None = None, what: str = "") -> str:
        deadline = time.monotonic() + (self.wait_s if timeout is None else timeout)
        text = self.screen()
        while time.monotonic() < deadline:
            text = self.screen()
            if predicate(text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"the screen never showed {what or 'what was expected'}:\n{text}")

    def highlighted_option(self) -> str:
        """The label of the option a focused selection list highlights (Textual draws it bold),
        without the editor's fold mark (▸ ▾) and what follows it; '' when none is."""
        for raw in self.run("capture-pane", "-p", "-e", "-t", self.session).splitlines():
            bold = raw.find("\x1b[1m")
            if "▐" not in raw or bold < 0:  # only selection lists' rows carry the check box
                continue
            label = re.sub(r"\s*[▸▾].*", "", _STYLE.sub("", raw[bold:]).split("▎")[0]).strip()
            if label:
                return label
        return ""

    def move_to_option(self, name: str, step_s: float = 60.0, limit: int = 200) -> None:
        """Press Down, as a person reading the list does, until the highlighted option's label
        ends with ``name`` (an argument, field or member: "skb->len")."""
        for _ in range(limit):
            now = self.highlighted_option()
            if now.endswith(" " + name):
                return
            self.keys("Down")
            deadline = time.monotonic() + step_s
            while self.highlighted_option() == now:
                if time.monotonic() > deadline:  # the end of the list, or no list has the focus
                    raise AssertionError(f"Down moved nothing on the way to {name}:\n{self.screen()}")
                time.sleep(0.2)
        raise AssertionError(f"{name} was never highlighted in the list:\n{self.screen()}")

def ktui_pid(pane_pid: int) -> int:
    """The ktui process: the pane's process or its child (tmux may start it through sh)."""
    for _ in range(50):
        for pid in [pane_pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pane_pid)], capture_output=True,
                                                                   text=True).stdout.split()]:
            try:
                if "ktui" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    return pid
            except OSError:
                pass
        time.sleep(0.1)
    raise AssertionError("ktui did not start")
