"""Over SSH for real: a private sshd on a loopback port, a tmux session running `ssh -tt ... ktui`,
driven by send-keys and read with capture-pane (issue 6, "Terminals").

The sshd is this machine's Debian openssh-server with a throwaway config, host key and client
key in tmp_path; it runs in the foreground (-D -e) and is killed at teardown. Where sshd, ssh,
tmux or bpftool are missing the tests skip with the reason (in CI, KTUI_REQUIRE_LIVE=1, they fail).
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import require_live
from helpers import getppid_binary, getppid_child, prog_ids_of, programs_left
from helpers.tmux import Tmux as SharedTmux
from ktui.kernel import process_alive as alive

pytestmark = [pytest.mark.live, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[1]  # the checkout under test (CI clones elsewhere)
KTUI = REPO / ".venv" / "bin" / "ktui"  # the checkout's venv (scripts/setup.sh); else the running venv's ktui
if not KTUI.exists():
    KTUI = Path(sys.executable).with_name("ktui")
SSHD = Path("/usr/sbin/sshd")


def missing(reason: str) -> None:
    if require_live():
        pytest.fail(f"KTUI_REQUIRE_LIVE=1 but the SSH test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A loopback port from 2222 up (random start), free right now."""
    start = 2222 + random.randrange(20000)
    for port in range(start, start + 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free loopback port for sshd")


class Tmux(SharedTmux):
    """The shared tmux driver on a private server; called, it runs a tmux command there."""

    def __init__(self, socket_name: str, session: str) -> None:
        super().__init__(session, socket=socket_name)

    def __call__(self, *args: str, check: bool = True) -> str:
        return self.run(*args, check=check)


@pytest.fixture
def sshd(tmp_path):
    """A private sshd on 127.0.0.1:<port> accepting one fresh client key for root (and nobody)."""
    for tool in ("ssh", "ssh-keygen", "tmux", "bpftool"):
        if shutil.which(tool) is None:
            missing(f"{tool} is not installed (apt-get install openssh-client openssh-server tmux bpftool)")
    if not SSHD.exists():
        missing(f"{SSHD} is not installed (apt-get install openssh-server)")
    if not KTUI.exists():
        missing(f"{KTUI} is missing: the checkout's venv is not set up")
    keys = tmp_path / "keys"
    keys.mkdir()
    host_key, client_key = keys / "host_ed25519", keys / "client_ed25519"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    authorized = keys / "authorized_keys"
    authorized.write_text(Path(f"{client_key}.pub").read_text())
    authorized.chmod(0o644)
    port = free_port()
    config = tmp_path / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
        f"AuthorizedKeysFile {authorized}", "PermitRootLogin prohibit-password",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
        "UsePAM no", "StrictModes no", f"PidFile {tmp_path / 'sshd.pid'}", "AcceptEnv LANG LC_*",
        "PrintMotd no", "PrintLastLog no", "Subsystem sftp internal-sftp", "",
    ]))
    os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
    log = (tmp_path / "sshd.log").open("w")
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"sshd exited at once:\n{(tmp_path / 'sshd.log').read_text()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            raise AssertionError(f"sshd never listened on {port}:\n{(tmp_path / 'sshd.log').read_text()}")
        yield {"port": port, "key": client_key, "log": tmp_path / "sshd.log"}
    finally:
        proc.kill()
        proc.wait()
        log.close()


@pytest.fixture
def tmux_ssh(sshd):
    """Start `ssh -tt ... <remote command>` in a private tmux server; yields (tmux, start)."""
    tmux = Tmux(f"ktui-ssh-{os.getpid()}", "ssh")
    started = []

    def start(remote: str, user: str = "root", size: tuple[int, int] = (100, 30)) -> int:
        ssh = ["ssh", "-tt", "-i", str(sshd["key"]), "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
               "-p", str(sshd["port"]), f"{user}@127.0.0.1", remote]
        tmux("new-session", "-d", "-x", str(size[0]), "-y", str(size[1]), "-s", tmux.session, "-e", "TERM=xterm-256color",
             *ssh)
        tmux("set-option", "-t", tmux.session, "remain-on-exit", "on")  # what ssh printed stays readable
        started.append(True)
        return int(tmux("list-panes", "-t", tmux.session, "-F", "#{pane_pid}").split()[0])

    try:
        yield tmux, start
    finally:
        if started:
            socket_path = tmux("display-message", "-p", "#{socket_path}", check=False).strip()
            tmux("kill-server", check=False)
            if socket_path:  # kill-server leaves its socket file behind
                Path(socket_path).unlink(missing_ok=True)


def pane_dead(tmux: Tmux) -> bool:
    return tmux("list-panes", "-t", tmux.session, "-F", "#{pane_dead}", check=False).strip() == "1"


def remote_ktui(marker: str) -> int:
    """The ktui process sshd started for this test (its command line carries a marker in the environment)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
                environ = (proc / "environ").read_bytes()
            except OSError:
                continue
            if str(KTUI).encode() in cmdline and marker.encode() in environ:
                return int(proc.name)
        time.sleep(0.1)
    raise AssertionError("ktui did not start behind sshd")


def test_ktui_over_ssh_add_a_tracepoint_by_keys_and_see_its_events(tmux_ssh):
    tmux, start = tmux_ssh
    marker = f"KTUI_SSH_TEST={os.getpid()}-{random.randrange(1 << 30)}"
    getppid_binary()  # built before the screen is watched
    start(f"env {marker} TERM=xterm-256color {KTUI}")
    pid = remote_ktui(marker)
    # The default session comes alive over the SSH pty: LIVE with its three probes attached.
    tmux.wait(lambda s: "LIVE" in s and "probes 3/3" in s, what="the live status line")
    time.sleep(1.0)  # let startup settle (the catalog's first listing) before typing
    tmux.keys("/")
    time.sleep(0.5)
    tmux.keys("sys_enter_getppid", literal=True)
    tmux.wait(lambda s: "syscalls:sys_enter_ge" in s, what="the catalog entry")
    tmux.keys("Enter")
    tmux.wait(lambda s: "Probe point" in s, what="the probe editor")
    tmux.keys("C-n")
    tmux.wait(lambda s: "probes 4/4" in s, what="the new probe attached")
    tmux.wait(lambda s: "TIME(s)" in s, what="the stream")
    comm = getppid_binary().name[:10]  # the narrow COMM column (100 columns) shows 10 characters

    def shows_getppid(text: str) -> bool:  # the PROBE column shows the whole name
        return any(comm in line and "sys_enter_getppid" in line for line in text.splitlines())

    deadline = time.monotonic() + 40
    seen = tmux.screen()
    while time.monotonic() < deadline and not shows_getppid(seen):
        getppid_child(20)
        time.sleep(0.3)
        seen = tmux.screen()
    assert shows_getppid(seen), seen
    loaded = prog_ids_of(pid)
    assert loaded, "ktui should hold its BPF programs while tracing"
    tmux.keys("q")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (alive(pid) or not pane_dead(tmux)):
        time.sleep(0.1)
    assert not alive(pid), f"ktui did not exit on q:\n{tmux.screen()}"
    assert pane_dead(tmux), f"the ssh session did not end after q:\n{tmux.screen()}"
    still = programs_left(loaded)
    assert not still, f"programs left in the kernel after quit over ssh: {still}"


def test_demo_over_ssh_as_a_user_without_root(tmux_ssh, request):
    """A user without root over SSH: ktui cannot trace, says why in its banner, plays the demo read-only,
    and q ends the session. Debian's nobody has no login shell, so the SSH login is root's and the
    remote command drops to nobody with runuser, as an admin's ``ssh host sudo -u user ktui`` would."""
    tmux, start = tmux_ssh
    if shutil.which("runuser") is None:
        missing("runuser is not installed (util-linux)")
    home = Path(tempfile.mkdtemp(prefix="ktui-ssh-home-"))  # under /tmp: pytest's tmp_path is root's alone
    request.addfinalizer(lambda: shutil.rmtree(home, ignore_errors=True))
    os.chown(home, 65534, 65534)
    start(f"runuser -u nobody -- env HOME={home} XDG_CACHE_HOME={home}/.cache XDG_CONFIG_HOME={home}/.config "
          f"XDG_DATA_HOME={home}/.local/share TERM=xterm-256color {KTUI}")
    text = tmux.wait(lambda s: " DEMO " in s and "delivered" in s and "needs root" in s, what="the demo banner")
    # The recording plays: events reach the stream (a count above zero in the status line).
    tmux.wait(lambda s: "delivered 0 " not in s, what="the demo's events")
    assert "Traceback" not in text
    tmux.keys("q")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not pane_dead(tmux):
        time.sleep(0.1)
    assert pane_dead(tmux), f"the ssh session did not end after q:\n{tmux.screen()}"


def test_ktui_over_ssh_at_80x24_keys_colours_and_quit(tmux_ssh):
    """The newcomer's terminal: ssh -t at 80x24. The browser folds away, the status line is coloured
    (256-colour codes reach the client through the SSH pty), keys switch tabs and come back, and q
    ends the SSH session with no program left in the kernel."""
    tmux, start = tmux_ssh
    marker = f"KTUI_SSH_TEST={os.getpid()}-{random.randrange(1 << 30)}"
    start(f"env {marker} TERM=xterm-256color {KTUI}", size=(80, 24))
    pid = remote_ktui(marker)
    text = tmux.wait(lambda s: "LIVE" in s and "probes 3/3" in s, timeout=120, what="the live status line")
    assert "search symbols" not in text  # folded at 80 columns
    coloured = tmux("capture-pane", "-p", "-e", "-t", tmux.session)
    status = next(line for line in coloured.splitlines() if "LIVE" in line)
    assert "\x1b[" in status and ("38;5;" in status or "48;5;" in status or "38;2;" in status), repr(status)
    tmux.keys("5")
    tmux.wait(lambda s: "Probe point" in s, what="the Probes tab")
    tmux.keys("1")
    tmux.wait(lambda s: "TIME(s)" in s, what="the stream again")
    tmux.keys("3")
    tmux.wait(lambda s: "TIME(s)" not in s and ("No stacks yet" in s or "%" in s), what="the Stacks tab")
    loaded = prog_ids_of(pid)
    assert loaded
    tmux.keys("q")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (alive(pid) or not pane_dead(tmux)):
        time.sleep(0.1)
    assert not alive(pid) and pane_dead(tmux), f"q did not end ktui and the ssh session:\n{tmux.screen()}"
    assert "Traceback" not in tmux.screen()
    assert not programs_left(loaded), "programs left in the kernel after quit over ssh"
