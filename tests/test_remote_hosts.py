"""Several hosts over real SSH: network namespaces made by the test, each with its own sshd.

Each "host" is a network namespace with a veth pair to this one on a private /30 (no traffic
leaves the machine) and its own sshd (host key, client key and sshd_config in tmp_path; system
configuration untouched). One host's sshd runs in a time namespace whose monotonic and boot-time
clocks are shifted by 1000 s, so its engine's clock is not ours and the offset estimated over
ssh has to be right for merged times to be. The remote ktui is this checkout's.

All namespaces share this one kernel, so a probe on host A also sees host B's processes: each
host's probe is filtered (``--host-filter``) to the pid of that host's own load generator.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import require_live
from helpers import getppid_binary, prog_ids_of
from ktui.errors import UsageError
from ktui.remote.hosts import make_links
from ktui.remote.source import HostsSource

pytestmark = [pytest.mark.live, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[1]
KTUI = REPO / ".venv" / "bin" / "ktui"
if not KTUI.exists():
    KTUI = Path(sys.executable).with_name("ktui")
SSHD = Path("/usr/sbin/sshd")
GETPPID = "tracepoint:syscalls:sys_enter_getppid"
SHIFT_S = 1000


def missing(reason: str) -> None:
    if require_live():
        pytest.fail(f"KTUI_REQUIRE_LIVE=1 but the hosts test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


class Host:
    """A network namespace with an address and its own sshd."""

    def __init__(self, tmp: Path, tag: str, index: int, net: int, keys: dict[str, Path], shift_s: int = 0) -> None:
        self.ns = f"ktui-{tag}-{index}"
        self.veth = f"kt{tag}{index}"[:15]
        self.addr = f"10.{net >> 8}.{net & 255}.{index * 4 + 2}"
        self.gateway = f"10.{net >> 8}.{net & 255}.{index * 4 + 1}"
        self.log = tmp / f"sshd-{index}.log"
        self.proc: subprocess.Popen | None = None
        run("ip", "netns", "add", self.ns)
        run("ip", "link", "add", self.veth, "type", "veth", "peer", "name", f"{self.veth}p")
        run("ip", "link", "set", f"{self.veth}p", "netns", self.ns)
        run("ip", "addr", "add", f"{self.gateway}/30", "dev", self.veth)
        run("ip", "link", "set", self.veth, "up")
        for cmd in (["ip", "addr", "add", f"{self.addr}/30", "dev", f"{self.veth}p"],
                    ["ip", "link", "set", f"{self.veth}p", "up"], ["ip", "link", "set", "lo", "up"]):
            run("ip", "netns", "exec", self.ns, *cmd)
        config = tmp / f"sshd_config-{index}"
        config.write_text("\n".join([
            "Port 22", f"ListenAddress {self.addr}", f"HostKey {keys['host']}",
            f"AuthorizedKeysFile {keys['authorized']}", "PermitRootLogin prohibit-password",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            "UsePAM no", "StrictModes no", f"PidFile {tmp / f'sshd-{index}.pid'}", "PrintMotd no",
            "PrintLastLog no", "",
        ]))
        clocks = ["unshare", "--time", "--fork", "--monotonic", str(shift_s), "--boottime", str(shift_s)] \
            if shift_s else []
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, *clocks, str(SSHD), "-D", "-e",
                                          "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"sshd exited at once:\n{self.log.read_text()}")
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex((self.addr, 22)) == 0:
                    return
            time.sleep(0.1)
        raise AssertionError(f"sshd never listened on {self.addr}:\n{self.log.read_text()}")

    def pids(self) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.ns], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def kill_everything(self) -> None:
        """The host dies: sshd, its sessions and the engine, at once."""
        for _ in range(5):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def generator(self, n: int) -> subprocess.Popen:
        """A getppid child in this namespace, held until a line arrives on its stdin; then exactly n calls.
        (`ip netns exec` and `sh` exec into it: the pid is the generator's.)"""
        return subprocess.Popen(["ip", "netns", "exec", self.ns, "sh", "-c", f'read _; exec "{getppid_binary()}" {n}'],
                                stdin=subprocess.PIPE)

    def remove(self) -> None:
        self.kill_everything()
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True)


@pytest.fixture
def hosts(tmp_path):
    """hosts(n, shifts) -> [Host...] and an ssh config file; all torn down afterwards."""
    for tool in ("ssh", "ssh-keygen", "ip", "unshare", "bpftool"):
        if shutil.which(tool) is None:
            missing(f"{tool} is not installed (scripts/setup.sh installs openssh-client, iproute2, util-linux)")
    if not SSHD.exists():
        missing(f"{SSHD} is not installed (apt-get install openssh-server)")
    if os.geteuid() != 0:
        missing("network namespaces need root")
    getppid_binary()
    keydir = tmp_path / "keys"
    keydir.mkdir()
    keys = {"host": keydir / "host_ed25519", "client": keydir / "client_ed25519",
            "authorized": keydir / "authorized_keys"}
    for key in (keys["host"], keys["client"]):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    keys["authorized"].write_text(Path(f"{keys['client']}.pub").read_text())
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("\n".join([
        "Host *", "  User root", f"  IdentityFile {keys['client']}", "  IdentitiesOnly yes",
        "  StrictHostKeyChecking no", "  UserKnownHostsFile /dev/null", "  LogLevel ERROR",
        "  ConnectTimeout 10", "",
    ]))
    tag = f"{os.getpid() % 100000}{random.randrange(100)}"
    net = random.randrange(1 << 12) + (200 << 8)  # 10.200.0.0 - 10.215.255.255
    made: list[Host] = []

    def make(shifts: list[int]) -> list[Host]:
        for i, shift in enumerate(shifts):
            made.append(Host(tmp_path, tag, i, net, keys, shift))
        return made

    try:
        yield make, ssh_config
    finally:
        for h in made:
            h.remove()


def kernel_prog_ids() -> set[int]:
    out = subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True, text=True, check=True).stdout
    return {p["id"] for p in json.loads(out or "[]")}


def stream_pids() -> list[int]:
    """This checkout's `ktui stream` processes (the remote engines behind the test's sshds)."""
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(str(KTUI).encode() == c for c in cmd) and b"stream" in cmd:
                out.append(int(proc.name))
    return out


def test_two_hosts_over_ssh_exact_counts_per_host_recorded_and_replayed_on_one_clock(hosts, tmp_path):
    make, ssh_config = hosts
    a, b = make([SHIFT_S, 0])  # a: monotonic and boot-time clocks 1000 s ahead of ours
    gen_a, gen_b = a.generator(3001), b.generator(1234)
    out = tmp_path / "two-hosts"
    rec = subprocess.Popen([str(KTUI), "record", GETPPID, "-o", str(out), "--host", f"root@{a.addr}",
                            "--host", f"root@{b.addr}", "--host-filter", a.addr, f"pid == {gen_a.pid}",
                            "--host-filter", b.addr, f"pid == {gen_b.pid}", "--remote-ktui", str(KTUI),
                            "--ssh-config", str(ssh_config)], stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        while len([ln for ln in lines if ": streaming" in ln or "FAILED" in ln]) < 2:
            line = rec.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        assert all("FAILED" not in ln for ln in lines), lines
        engines = stream_pids()
        assert len(engines) == 2
        held = set().union(*(prog_ids_of(p) for p in engines))
        assert held
        before = time.monotonic_ns()
        for gen in (gen_a, gen_b):
            gen.stdin.write(b"\n")
            gen.stdin.close()
        assert gen_a.wait(30) == 0 and gen_b.wait(30) == 0
        after = time.monotonic_ns()
        time.sleep(1.0)
        rec.send_signal(signal.SIGINT)
        rest = rec.communicate(timeout=60)[1]
    finally:
        rec.kill()
    report = "".join(lines) + rest
    assert rec.returncode == 0, report
    # Each host's engine stopped and left nothing in the kernel.
    deadline = time.monotonic() + 15
    while stream_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not stream_pids() and not held & kernel_prog_ids()
    # (hits count every getppid the probe saw, the other host's too: the filter is what keeps them apart)
    assert f"{a.addr}: ended" in report and "; 3,001 events of " in report
    assert f"{b.addr}: ended" in report and "; 1,234 events of " in report and "dropped" not in report

    from ktui.recording.reader import RecordingReader
    from ktui.sources.replay import ReplaySource

    files = sorted(out.glob("*.ktrec"))
    assert [f.name for f in files] == sorted([f"{a.addr}.ktrec", f"{b.addr}.ktrec"])
    by_host = {RecordingReader.open(f).host: RecordingReader.open(f) for f in files}
    ra, rb = by_host[a.addr], by_host[b.addr]
    assert ra.count() == 3001 and rb.count() == 1234
    assert {int(p) for arr in ra.events() for p in arr["pid"]} == {gen_a.pid}
    # a's file is on a's own clock (1000 s ahead of ours); its offset says so, within the uncertainty.
    u_a = ra.meta["clock_offset_uncertainty_ns"]
    assert 0 < u_a < 50_000_000 and ra.meta["timens_offset_ns"] == SHIFT_S * 10**9
    local_real_minus_mono = time.time_ns() - time.monotonic_ns()
    assert abs(ra.clock_offset_ns - local_real_minus_mono + SHIFT_S * 10**9) <= u_a + 1_000_000
    ts_a = [int(t) for arr in ra.events() for t in arr["ts"]]
    assert min(ts_a) > before + SHIFT_S * 10**9 - u_a - 1_000_000
    # Replayed together: one track per host, full probe names, and a's events placed among b's
    # on one timeline (shifted back by the recorded offsets), not 1000 s apart.
    replay = ReplaySource([str(f) for f in files])
    try:
        assert sorted(t.name for t in replay.tracks) == sorted([a.addr, b.addr])
        assert sorted(lay.name for lay in replay.layouts.values()) == sorted(
            [f"{a.addr}:sys_enter_getppid", f"{b.addr}:sys_enter_getppid"])
        span_ns = replay.end_ns - replay.start_ns
        assert span_ns < (after - before) + 2 * u_a + 100_000_000
    finally:
        replay.stop()
    # `ktui replay DIR` in the app at 80x24: a HOST column, the probe's own name whole, every event
    # under its own host (each host's generator pid only on its host's rows).
    import asyncio

    from helpers.stream_screen import replayed_screen

    header, rows, _ = asyncio.run(replayed_screen(files, 3001 + 1234))
    assert header.split()[2:6] == ["COMM", "PID", "HOST", "PROBE"]
    cells = [r.split() for r in rows]
    assert cells and all(c[5] == "sys_enter_getppid" for c in cells), rows
    assert all(c[4] == (a.addr if c[3] == str(gen_a.pid) else b.addr) for c in cells), rows
    assert {c[3] for c in cells} <= {str(gen_a.pid), str(gen_b.pid)}


def test_a_probe_disabled_on_two_hosts_stops_counting_on_both_and_counts_again_when_enabled(hosts):
    """Toggles reach each host's engine under the id it gave the probe: while disabled, neither host's
    probe sees its load generator's calls (no events, no hits); enabled again, exact counts again."""
    make, ssh_config = hosts
    a, b = make([0, 0])
    gens = {h.addr: [h.generator(n) for n in ns] for h, ns in ((a, (300, 400, 50)), (b, (200, 500, 70)))}
    links = make_links([f"root@{a.addr}", f"root@{b.addr}"], [GETPPID], remote_ktui=str(KTUI),
                       ssh_config=str(ssh_config),
                       host_filters={h: " || ".join(f"pid == {g.pid}" for g in gs) for h, gs in gens.items()})
    source = HostsSource(links)
    updates: list = []

    def run(phase: int) -> None:
        for gs in gens.values():
            gs[phase].stdin.write(b"\n")
            gs[phase].stdin.close()
        for gs in gens.values():
            assert gs[phase].wait(30) == 0
        time.sleep(1.5)  # the last events and counters cross ssh

    def counts() -> dict[str, int]:
        return {label: sum(len(u.events.get(gid, ())) for u in updates) for (label, _rid), gid in source._ids.items()}

    def hits() -> dict[str, int]:
        # every getppid on this one kernel is a hit (the filter keeps the hosts apart): exact only as "no more"
        last = source.last_update
        assert last is not None
        return {label: last.counters[gid].totals()["hits"] for (label, _rid), gid in source._ids.items()}

    def wait_states(status: str) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            last = source.last_update
            if last is not None and len(last.probes) == 2 and all(s.status == status for s in last.probes):
                return
            time.sleep(0.1)
        raise AssertionError(f"not {status} on both hosts: {last.probes if last else None}")

    try:
        source.start(updates.append)
        assert [lk.status for lk in links] == ["streaming", "streaming"], [lk.describe() for lk in links]
        run(0)
        assert counts() == {a.addr: 300, b.addr: 200}
        for gid in sorted(source.layouts):
            source.enable_probe(gid, False)
        wait_states("disabled")  # each host's engine says so (its STATES frame)
        time.sleep(0.5)
        before = hits()
        run(1)
        assert counts() == {a.addr: 300, b.addr: 200}  # the 400 and 500 calls are not seen
        assert hits() == before  # not even counted: a disabled probe returns at once
        for gid in sorted(source.layouts):
            source.enable_probe(gid, True)
        wait_states("attached")
        run(2)
        assert counts() == {a.addr: 350, b.addr: 270}
        with pytest.raises(UsageError, match="no probe 99 on any host"):
            source.enable_probe(99, False)
    finally:
        source.stop()
    assert [lk.status for lk in links] == ["ended", "ended"], [lk.describe() for lk in links]


def test_a_host_killed_mid_run_is_marked_and_the_other_goes_on(hosts):
    make, ssh_config = hosts
    a, b = make([0, 0])
    gen_a1, gen_a2, gen_b = a.generator(500), a.generator(777), b.generator(100)
    links = make_links([f"root@{a.addr}", f"root@{b.addr}"], [GETPPID], remote_ktui=str(KTUI),
                       ssh_config=str(ssh_config),
                       host_filters={a.addr: f"pid == {gen_a1.pid} || pid == {gen_a2.pid}",
                                     b.addr: f"pid == {gen_b.pid}"})
    source = HostsSource(links)
    updates = []
    try:
        source.start(updates.append)
        assert [lk.status for lk in links] == ["streaming", "streaming"], [lk.describe() for lk in links]
        for gen in (gen_a1, gen_b):
            gen.stdin.write(b"\n")
            gen.stdin.close()
            assert gen.wait(30) == 0
        time.sleep(1.0)
        b.kill_everything()  # b's sshd, its session and its engine: the host is gone
        assert links[1].done.wait(30), links[1].describe()
        gen_a2.stdin.write(b"\n")
        gen_a2.stdin.close()
        assert gen_a2.wait(30) == 0
        time.sleep(1.0)
        assert links[0].status == "streaming"
    finally:
        source.stop()
    ids = {label: gid for (label, _rid), gid in source._ids.items()}
    got = {label: sum(len(u.events.get(gid, ())) for u in updates) for label, gid in ids.items()}
    assert got == {a.addr: 1277, b.addr: 100}
    assert links[1].status == "failed" and links[1].reason.startswith("lost: ssh exited with status 255")
    assert links[0].status == "ended"
    assert any(u.message.startswith(f"1 of 2 hosts down: {b.addr} (lost: ssh exited with status 255")
               for u in updates)
    states = {s.name: s for s in updates[-1].probes}
    assert states[f"{b.addr}:sys_enter_getppid"].status == "failed"
    assert f"host {b.addr} lost" in states[f"{b.addr}:sys_enter_getppid"].reason
    assert states[f"{a.addr}:sys_enter_getppid"].status == "attached"
    assert updates[-1].counters[ids[a.addr]].totals()["delivered"] == 1277


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_the_remote_engines_stop_and_detach_however_the_local_ktui_ends(hosts, tmp_path, how):
    make, ssh_config = hosts
    (a,) = make([0])
    rec = subprocess.Popen([str(KTUI), "record", GETPPID, "-o", str(tmp_path / "out"), "--host", f"root@{a.addr}",
                            "--remote-ktui", str(KTUI), "--ssh-config", str(ssh_config)],
                           stderr=subprocess.PIPE, text=True)
    try:
        line = rec.stderr.readline()
        assert ": streaming" in line, line + rec.stderr.read()
        (engine,) = stream_pids()
        held = prog_ids_of(engine)
        assert held and held <= kernel_prog_ids()
        rec.send_signal(how)
        rec.wait(60)
    finally:
        rec.kill()
    deadline = time.monotonic() + 20
    while stream_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not stream_pids(), "the remote ktui stream outlived the local ktui"
    assert not held & kernel_prog_ids()


def test_the_app_over_two_hosts_in_tmux_shows_both_marks_the_dead_one_and_quits_clean(hosts):
    """As a person runs it: `ktui --host A --host B SPEC` at 80x24, events of each host named by it,
    one host dies (the status line says which), q ends the app and both remote engines."""
    from helpers.tmux import Tmux

    if shutil.which("tmux") is None:
        missing("tmux is not installed")
    make, ssh_config = hosts
    a, b = make([0, 0])
    gen_a, gen_b = a.generator(3), b.generator(2)
    session = f"ktui-hosts-{os.getpid()}"
    argv = [str(KTUI), "--host", f"root@{a.addr}", "--host", f"root@{b.addr}", "--ssh-config", str(ssh_config),
            "--remote-ktui", str(KTUI), "--host-filter", a.addr, f"pid == {gen_a.pid}",
            "--host-filter", b.addr, f"pid == {gen_b.pid}", GETPPID]
    import shlex

    subprocess.run(["tmux", "new-session", "-d", "-x", "80", "-y", "24", "-s", session, "-e", "TERM=xterm-256color",
                    shlex.join(argv) + "; sleep 60"], check=True)
    tmux = Tmux(session, wait_s=120)
    try:
        tmux.wait(lambda s: "probes 2/2" in s)
        assert len(stream_pids()) == 2
        for gen in (gen_a, gen_b):
            gen.stdin.write(b"\n")
            gen.stdin.close()
            assert gen.wait(30) == 0
        def event_rows(screen: str) -> list[list[str]]:
            return [c for c in (ln.split() for ln in screen.splitlines()) if c[5:6] == ["sys_enter_getppid"]]

        screen = tmux.wait(lambda s: len(event_rows(s)) >= 5)
        rows = event_rows(screen)
        # A HOST column of its own (the host's address, whole) and the probe's own name, whole, at
        # 80 columns: a's three calls and b's two, each row named by its host.
        header = next(ln for ln in screen.splitlines() if "PROBE" in ln).split()
        assert header[2:6] == ["COMM", "PID", "HOST", "PROBE"], screen
        assert sum(r[3:6] == [str(gen_a.pid), a.addr, "sys_enter_getppid"] for r in rows) == 3, screen
        assert sum(r[3:6] == [str(gen_b.pid), b.addr, "sys_enter_getppid"] for r in rows) == 2, screen
        b.kill_everything()
        tmux.wait(lambda s: "1 of 2 hosts down" in s and "probes 1/2 (1 failed)" in s)
        tmux.run("send-keys", "-t", session, "5")  # the probes pane: full names, b's failed
        screen = tmux.wait(lambda s: f"{b.addr}:sys_enter_getppid" in s and "failed" in s)
        assert f"{a.addr}:sys_enter_getppid" in screen
        tmux.run("send-keys", "-t", session, "q")
        screen = tmux.wait(lambda s: f"ktui: {a.addr}: ended" in s)
        assert f"ktui: {b.addr}: FAILED" in screen
        deadline = time.monotonic() + 20
        while stream_pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not stream_pids()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
