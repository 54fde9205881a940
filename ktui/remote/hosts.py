"""One host's link: `ssh HOST ktui stream SPEC...` and the frames coming back.

ssh is the system's OpenSSH client with the user's own configuration, keys and agent;
``BatchMode`` so it never asks for a password on a terminal the app owns. The remote
command line is built with ``shlex`` quoting, word by word, so no spec or filter can be
read by the remote shell as anything but one argument. ssh runs in its own session (a
Ctrl-C meant for ktui does not cut the stream short before the final counters); its stdin
is ours alone, so when ktui ends (quit, a signal, SIGKILL) ssh sees the end of it, passes
it on, and the remote engine stops and detaches.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ktui.errors import KtuiError, UsageError
from ktui.events import Histogram, KeyCounts, ProbeCounters, ProbeLayout, ProbeState, StackTrace
from ktui.remote import protocol as P
from ktui.remote.clock import ClockEstimate, ClockSample

FIRST_PROBES, FIRST_PROBE_GAP_S, PROBE_EVERY_S = 8, 0.03, 2.0
STDERR_KEEP = 4096  # bytes of ssh's stderr kept for the sentence when a host fails
STOP_WAIT_S = 30.0  # for the remote engine to detach and send its last counters and aggregates (symbolized)
# A destination ssh takes as such: no leading '-' (it would be an option), no spaces or controls.
_HOST = re.compile(r"[A-Za-z0-9_.@:%\[\]+-]{1,255}")


def check_host(host: str) -> str:
    if not _HOST.fullmatch(host) or host.startswith("-"):
        raise UsageError(f"{host!r} is not a host ssh can reach: give [USER@]HOST, as you would to ssh.")
    return host


def host_label(host: str) -> str:
    """The name shown for a host: what was given, without the user."""
    return host.rsplit("@", 1)[-1]


def remote_command(remote_ktui: str, specs: list[str], *, filter_text: str | None = None,
                   pid: int | None = None) -> str:
    """The command line the remote shell runs, each word quoted (never pasted)."""
    words = [remote_ktui, "stream"]
    if filter_text is not None:
        words += ["--filter", filter_text]
    if pid is not None:
        words += ["--pid", str(pid)]
    return shlex.join([*words, "--", *specs])


def ssh_argv(host: str, command: str, *, ssh: str = "ssh", config: str | None = None,
             options: list[str] | None = None) -> list[str]:
    argv = [ssh, "-T", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=2", "-o", "ServerAliveCountMax=3"]
    if config is not None:
        argv += ["-F", config]
    for opt in options or []:
        argv += ["-o", opt]
    return [*argv, "--", check_host(host), command]


class LinkEvents:
    """What a link reports, each called on the link's reader thread."""

    def hello(self, link: HostLink, hello: P.Hello) -> None: ...

    def events(self, link: HostLink, probe_id: int, records: np.ndarray) -> None: ...

    def counters(self, link: HostLink, counters: dict[int, ProbeCounters]) -> None: ...

    def states(self, link: HostLink, states: list[ProbeState]) -> None: ...

    def aggregates(self, link: HostLink, stacks: list[StackTrace], histograms: list[Histogram],
                   counts: list[KeyCounts]) -> None: ...

    def ended(self, link: HostLink) -> None: ...


@dataclass
class HostLink:
    """One host: its ssh process, the frames it sends, its clock offset, and how it ended."""
    host: str
    argv: list[str]
    label: str = ""
    clock: ClockEstimate = field(default_factory=ClockEstimate)
    hello: P.Hello | None = None
    status: str = "connecting"  # connecting, streaming, ended, failed
    reason: str = ""  # why it failed or ended, one sentence
    ready: threading.Event = field(default_factory=threading.Event)  # hello arrived, or the link failed
    done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.label = self.label or host_label(self.host)
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr = bytearray()
        self._sent: dict[int, int] = {}
        self._seq = 0
        self._wlock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._ended_cleanly = False
        self._magic = threading.Event()  # the remote answered: clock probes are read from now on

    # -- life

    def start(self, events: LinkEvents) -> None:
        try:
            self._proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, start_new_session=True, bufsize=0)
        except OSError as err:
            self._fail(f"ssh could not be started ({err.strerror}); is the OpenSSH client installed?", events)
            return
        for target, name in ((self._read, "frames"), (self._read_stderr, "stderr"), (self._probe_clock, "clock")):
            t = threading.Thread(target=target, args=(events,) if target == self._read else (),
                                 name=f"ktui-host-{self.label}-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def _fail(self, reason: str, events: LinkEvents) -> None:
        self.status, self.reason = "failed", reason
        self.done.set()
        self.ready.set()
        events.ended(self)

    def stop(self, wait_s: float = STOP_WAIT_S) -> None:
        """Close the remote's stdin (it stops and detaches), wait for its last frames, then end ssh."""
        proc = self._proc
        if proc is None:
            return
        with self._wlock:
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
            except OSError:
                pass
        if not self.done.wait(wait_s):
            self.reason = self.reason or f"the host did not finish within {wait_s:.0f} s of being asked to stop"
        for _ in range(2):
            if proc.poll() is not None:
                break
            try:
                proc.terminate()
                proc.wait(2)
            except subprocess.TimeoutExpired:
                proc.kill()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def kill(self) -> None:
        """For tests and emergencies: end ssh at once (the remote sees its stdin end)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- threads

    def _read(self, events: LinkEvents) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        f = proc.stdout
        try:
            try:
                P.read_magic(f)
            except P.StreamError as err:
                # Nothing at all: ssh itself failed (no route, refused, keys); its own words say why.
                lost = self._lost_reason()
                raise P.StreamError(lost.removeprefix("lost: ") if "(" in lost else str(err)) from None
            self._magic.set()
            layouts: dict[int, ProbeLayout] = {}
            while True:
                fr = P.read_frame(f)
                if fr is None:
                    break
                if fr.kind == P.CLOCK:
                    seq, remote = P.decode_clock(fr.payload)
                    sent = self._sent.pop(seq, None)
                    if sent is not None:
                        self.clock.add(ClockSample(sent, time.monotonic_ns(), remote))
                elif fr.kind == P.HELLO:
                    if self.hello is not None:
                        raise P.StreamError("the stream described its probes twice.")
                    self.hello = P.decode_hello(fr.payload)
                    layouts = self.hello.layouts
                    self.status = "streaming"
                    events.hello(self, self.hello)
                    self.ready.set()
                elif fr.kind == P.EVENTS:
                    probe_id, records = P.decode_events(fr.payload, layouts)
                    events.events(self, probe_id, records)
                elif fr.kind == P.COUNTERS:
                    events.counters(self, P.decode_counters(fr.payload, layouts))
                elif fr.kind == P.STATES:
                    states = P.decode_states(fr.payload)
                    if any(s.probe_id not in layouts for s in states):
                        raise P.StreamError("the stream's probe states name probes it never described.")
                    events.states(self, states)
                elif fr.kind == P.AGGREGATES:
                    events.aggregates(self, *P.decode_aggregates(fr.payload, layouts))
                elif fr.kind == P.ERROR:
                    self.reason = P.decode_sentence(fr.payload, "error")
                    self.status = "failed"
                elif fr.kind == P.END:
                    self.reason = P.decode_sentence(fr.payload, "end") or self.reason
                    self._ended_cleanly = True
                    break
                else:
                    raise P.StreamError(f"the stream holds an unexpected frame of kind {fr.kind}.")
        except KtuiError as err:
            self.status, self.reason = "failed", str(err)
        except (OSError, ValueError) as err:
            self.status, self.reason = "failed", f"reading the stream failed ({err})"
        finally:
            if self.status != "failed" and not self._ended_cleanly:
                self.status = "failed"
                self.reason = self._lost_reason()
            elif self.status == "streaming" or (self.status == "connecting" and self._ended_cleanly):
                self.status = "ended"
            self.done.set()
            self.ready.set()
            events.ended(self)

    def _lost_reason(self) -> str:
        proc = self._proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(3)
            except subprocess.TimeoutExpired:
                code = None
        time.sleep(0.05)  # ssh's last stderr line comes with its exit
        said = bytes(self._stderr).decode("utf-8", "replace").strip().splitlines()
        last = said[-1][:300] if said else ""
        how = f"ssh exited with status {code}" if code is not None else "the connection ended"
        return f"lost: {how}" + (f" ({last})" if last else "")

    def _read_stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        while True:
            try:
                b = proc.stderr.read(1024)
            except (OSError, ValueError):
                return
            if not b:
                return
            self._stderr += b
            del self._stderr[:-STDERR_KEEP]

    def _send_probe(self) -> bool:
        proc = self._proc
        with self._wlock:
            if proc is None or proc.stdin is None or proc.stdin.closed:
                return False
            self._seq += 1
            self._sent[self._seq] = time.monotonic_ns()
            try:
                proc.stdin.write(P.clock_probe_frame(self._seq))
            except (OSError, ValueError):
                return False
        if len(self._sent) > 64:  # answers that never came (a host that stopped answering)
            for seq in sorted(self._sent)[:-64]:
                self._sent.pop(seq, None)
        return True

    def send_toggle(self, probe_id: int, enabled: bool) -> None:
        """Switch one of this host's probes (its engine's own id) on or off."""
        proc = self._proc
        with self._wlock:
            if self.status != "streaming" or proc is None or proc.stdin is None or proc.stdin.closed:
                raise KtuiError(f"host {self.label} is not streaming" + (f" ({self.reason})." if self.reason else "."))
            try:
                proc.stdin.write(P.toggle_frame(probe_id, enabled))
            except (OSError, ValueError) as err:
                raise KtuiError(f"host {self.label} could not be asked to switch the probe ({err}).") from None

    def _probe_clock(self) -> None:
        while not self._magic.wait(0.1):
            if self.done.is_set():
                return
        n = 0
        while not self.done.is_set():
            if not self._send_probe():
                return
            n += 1
            self.done.wait(FIRST_PROBE_GAP_S if n < FIRST_PROBES else PROBE_EVERY_S)

    def describe(self) -> str:
        state = {"connecting": "connecting", "streaming": "streaming", "ended": "ended",
                 "failed": "FAILED"}[self.status]
        out = f"{self.label}: {state}"
        if self.clock.known:
            out += f", {self.clock.describe()}"
        if self.reason:
            out += f": {self.reason}"
        return out


def make_links(hosts: list[str], specs: list[str], *, filter_text: str | None = None,
               host_filters: dict[str, str] | None = None, pid: int | None = None, remote_ktui: str = "ktui",
               ssh_config: str | None = None, ssh_options: list[str] | None = None) -> list[HostLink]:
    if not hosts:
        raise UsageError("no host given.")
    labels: list[str] = []
    links = []
    host_filters = dict(host_filters or {})
    for host in hosts:
        check_host(host)
        label = host_label(host)
        if label in labels:
            label = host
        if label in labels:
            raise UsageError(f"{host} is given twice.")
        labels.append(label)
        flt = _and(filter_text, host_filters.pop(host, None) or host_filters.pop(label, None))
        command = remote_command(remote_ktui, specs, filter_text=flt, pid=pid)
        links.append(HostLink(host, ssh_argv(host, command, config=ssh_config, options=ssh_options), label))
    if host_filters:
        raise UsageError(f"--host-filter names {sorted(host_filters)[0]}, which is not one of the --host hosts.")
    return links


def _and(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a if b is None else b
    return f"({a}) && ({b})"


Callback = Callable[[HostLink], None]
