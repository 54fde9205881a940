"""The stream's frames: what the remote writes decodes to the same values, and anything else
(damaged, truncated, hostile) is one StreamError sentence with bounded memory."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ktui.events import FieldLayout, ProbeCounters, ProbeLayout, ProbeState
from ktui.remote import protocol as P
from ktui.remote.clock import ClockEstimate, ClockSample
from ktui.remote.hosts import check_host, make_links, remote_command
from ktui.errors import UsageError

LAYOUT = ProbeLayout(3, "sys_enter_openat", "tracepoint:syscalls:sys_enter_openat",
                     (FieldLayout("dfd", "<i4", "s"), FieldLayout("filename", "S64", "string")))


def _stream(*frames: bytes) -> io.BytesIO:
    return io.BytesIO(P.MAGIC + b"".join(frames))


def _hello(layouts=(LAYOUT,)) -> bytes:
    return P.hello_frame("h1", {"release": "6.18"}, list(layouts), {lay.probe_id: {"kind": "x"} for lay in layouts},
                         [ProbeState(lay.probe_id, lay.name, lay.spec, "attached") for lay in layouts], ["n"], -5)


def _read_all(f: io.BytesIO) -> list[P.Frame]:
    P.read_magic(f)
    out = []
    while (fr := P.read_frame(f)) is not None:
        out.append(fr)
    return out


def test_every_frame_round_trips():
    recs = np.zeros(5, LAYOUT.dtype)
    recs["ts"] = [10, 20, 30, 40, 2**63 + 1]
    recs["pid"] = 77
    recs["filename"] = b"/etc/hostname"
    recs["dfd"] = -100
    counters = {3: ProbeCounters([5, 6], [4, 1], [1, 0], [0, 5], missed=2)}
    f = _stream(_hello(), *P.events_frames(3, recs), P.counters_frame(counters),
                P.states_frame([ProbeState(3, "n", "s", "failed", "why")]), P.clock_frame(9, 123456789),
                P.json_frame(P.END, {"message": "done"}))
    frames = _read_all(f)
    hello = P.decode_hello(frames[0].payload)
    assert hello.host == "h1" and hello.layouts == {3: LAYOUT} and hello.timens_offset_ns == -5
    assert hello.states[0].status == "attached" and hello.probes == {3: {"kind": "x"}}
    probe_id, got = P.decode_events(frames[1].payload, hello.layouts)
    assert probe_id == 3 and got.tobytes() == recs.tobytes()
    assert P.decode_counters(frames[2].payload, hello.layouts) == counters
    assert P.decode_states(frames[3].payload) == [ProbeState(3, "n", "s", "failed", "why")]
    assert P.decode_clock(frames[4].payload) == (9, 123456789)
    assert P.decode_sentence(frames[5].payload, "end") == "done"


def test_aggregates_round_trip_and_hostile_ones_are_refused():
    from ktui.events import Histogram, KeyCounts, StackTrace

    stacks = [StackTrace(3, ("schedule", "do_idle"), ("main",), 7), StackTrace(3, (), (), 2)]
    hists = [Histogram(3, "latency", "log2", [(0, 1, 4), (1, 2, 9)])]
    counts = [KeyCounts(3, ("comm", "cpu"), [(("bash", 1), 5), (("sshd", 0), 1)])]
    (fr,) = _read_all(_stream(P.aggregates_frame(stacks, hists, counts)))
    assert P.decode_aggregates(fr.payload, {3: LAYOUT}) == (stacks, hists, counts)
    for bad in ({"stacks": [[4, [], [], 1]]}, {"stacks": [[3, [1], [], 1]]}, {"stacks": [[3, [], [], -1]]},
                {"histograms": [[3, "v", "cubic", []]]}, {"counts": [[3, ["k"], [[[{"x": 1}], 1]]]]},
                {"stacks": [[3, ["f"] * (P.AGG_FRAMES_MAX + 1), [], 1]]}, {"stacks": [3]}, [1]):
        with pytest.raises(P.StreamError):
            P.decode_aggregates(json.dumps(bad).encode(), {3: LAYOUT})


def test_big_event_arrays_are_split_into_bounded_frames():
    recs = np.zeros(P.MAX_EVENTS_BYTES // LAYOUT.record_size * 2 + 7, LAYOUT.dtype)
    recs["ts"] = np.arange(len(recs))
    frames = P.events_frames(3, recs)
    assert len(frames) == 3 and all(len(fr) <= P.MAX_EVENTS_BYTES + 16 for fr in frames)
    got = [P.decode_events(fr.payload, {3: LAYOUT})[1] for fr in _read_all(_stream(*frames))]
    assert np.concatenate(got)["ts"].tolist() == list(range(len(recs)))


@pytest.mark.parametrize("data, sentence", [
    (b"", "wrote nothing"),
    (b"Welcome to host!\n", "did not answer with ktui's stream"),
    (P.MAGIC + b"\x63\x00\x00\x00\x00", "unknown kind 99"),
    (P.MAGIC + struct.pack("<BI", P.EVENTS, P.MAX_FRAME + 1), "more than the"),
    (P.MAGIC + struct.pack("<BI", P.HELLO, P.MAX_JSON + 1), "more than the"),
    (P.MAGIC + struct.pack("<BI", P.CLOCK, 16) + b"\0" * 3, "ended in the middle"),
    (P.MAGIC + b"\x02\x01", "ended in the middle"),
])
def test_damaged_streams_are_one_sentence(data, sentence):
    with pytest.raises(P.StreamError, match=sentence):
        _read_all(io.BytesIO(data))


@pytest.mark.parametrize("payload, sentence", [
    (P.EVENTS_HEAD.pack(4, 1) + b"\0" * LAYOUT.record_size, "never described"),
    (P.EVENTS_HEAD.pack(3, 2) + b"\0" * LAYOUT.record_size, "not 2 records"),
    (P.EVENTS_HEAD.pack(3, 2**32 - 1), "not 4294967295 records"),
    (b"\0", "shorter than its header"),
])
def test_events_that_do_not_fit_their_layout_are_refused(payload, sentence):
    with pytest.raises(P.StreamError, match=sentence):
        P.decode_events(payload, {3: LAYOUT})


@pytest.mark.parametrize("hello", [
    {"version": 2},
    {"version": 1, "host": "h", "layouts": [{"probe_id": 0, "name": "n", "spec": "s",
                                            "fields": [{"name": "x", "dtype": "O"}]}]},
    {"version": 1, "host": "h", "layouts": [{"probe_id": 0, "name": "n", "spec": "s",
                                            "fields": [{"name": "x", "dtype": "S99999999"}]}]},
    {"version": 1, "host": "h", "layouts": [{"probe_id": 0, "name": "n", "spec": "s",
                                            "fields": [{"name": "x", "dtype": "(3,)u4"}]}]},
    {"version": 1, "host": 5, "layouts": []},
    {"version": 1, "host": "h", "layouts": [{"probe_id": -1, "name": "n", "spec": "s"}]},
    {"version": 1, "host": "h", "layouts": [], "probes": {"0": {}}},
    {"version": 1, "host": "h", "layouts": [], "states": [{"probe_id": 0, "name": "n", "spec": "s",
                                                           "status": "owned"}]},
    [1, 2],
])
def test_hostile_hello_frames_are_refused(hello):
    with pytest.raises(P.StreamError):
        P.decode_hello(json.dumps(hello).encode())


def test_a_pickle_or_binary_hello_is_not_evaluated():
    import pickle

    with pytest.raises(P.StreamError, match="not valid JSON"):
        P.decode_hello(pickle.dumps({"version": 1}))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_after_the_magic_give_frames_or_one_stream_error(data):
    layouts = {3: LAYOUT}
    try:
        for fr in _read_all(_stream(data)):
            {P.HELLO: P.decode_hello, P.STATES: P.decode_states, P.CLOCK: P.decode_clock,
             P.EVENTS: lambda p: P.decode_events(p, layouts), P.COUNTERS: lambda p: P.decode_counters(p, layouts),
             P.AGGREGATES: lambda p: P.decode_aggregates(p, layouts), P.END: lambda p: P.decode_sentence(p, "end"), P.ERROR: lambda p: P.decode_sentence(p, "error"),
             P.CLOCK_PROBE: P.decode_probe}[fr.kind](fr.payload)
    except P.StreamError:
        pass


def test_the_min_round_trip_sample_sets_offset_and_uncertainty():
    clock = ClockEstimate()
    assert not clock.known
    clock.add(ClockSample(1000, 1600, 5_000))  # rtt 600
    clock.add(ClockSample(2000, 2100, 6_050))  # rtt 100: the best
    clock.add(ClockSample(3000, 3900, 1))
    assert clock.samples == 3
    assert clock.offset_ns == 2050 - 6050 and clock.uncertainty_ns == 50


def test_the_estimate_follows_a_drifting_clock_through_its_recent_samples():
    clock = ClockEstimate(window=4)
    clock.add(ClockSample(0, 10, 0))  # a very short round trip, long ago
    for i in range(1, 5):  # later the host's clock has moved 1 ms against ours
        t = i * 1_000_000_000
        clock.add(ClockSample(t, t + 400, t + 200 - 1_000_000))
    assert clock.offset_ns == 1_000_000 and clock.uncertainty_ns == 200


def test_remote_command_quotes_every_word():
    import shlex

    spec = "tracepoint:syscalls:sys_enter_openat'; touch /tmp/pwned; echo '$(id)`id`"
    cmd = remote_command("/opt/ktui/bin/ktui", [spec, "--help"], filter_text='comm == "a b"; rm -rf /', pid=5)
    assert shlex.split(cmd) == ["/opt/ktui/bin/ktui", "stream", "--filter", 'comm == "a b"; rm -rf /',
                                "--pid", "5", "--", spec, "--help"]


@pytest.mark.parametrize("host", ["-oProxyCommand=sh", "a b", "a\nb", "", "x;y", "a/b"])
def test_hosts_that_are_not_destinations_are_refused(host):
    with pytest.raises(UsageError):
        check_host(host)


def test_links_per_host_filters_and_labels():
    links = make_links(["root@a", "b", "u@10.0.0.1"], ["tracepoint:x:y"], filter_text="pid > 1",
                       host_filters={"a": "pid == 5"}, remote_ktui="ktui")
    assert [lk.label for lk in links] == ["a", "b", "10.0.0.1"]
    assert "'(pid > 1) && (pid == 5)'" in links[0].argv[-1] and "'pid > 1'" in links[1].argv[-1]
    assert links[0].argv[-3:-1] == ["--", "root@a"] and "BatchMode=yes" in links[0].argv
    with pytest.raises(UsageError, match="not one of"):
        make_links(["a"], ["s"], host_filters={"c": "pid == 1"})
    with pytest.raises(UsageError, match="twice"):
        make_links(["a", "a"], ["s"])


@pytest.mark.parametrize("script, reason", [
    ("echo 'ssh: Could not resolve hostname nosuch: Name or service not known' >&2; exit 255",
     "ssh exited with status 255 (ssh: Could not resolve hostname nosuch: Name or service not known)"),
    ("echo 'bash: line 1: ktui: command not found' >&2; exit 127",
     "ssh exited with status 127 (bash: line 1: ktui: command not found)"),
    ("printf 'Welcome!\\n'", "the remote side did not answer with ktui's stream"),
    ("exit 0", "the remote side wrote nothing"),
])
def test_a_host_that_never_streams_fails_with_what_ssh_said(script, reason):
    from ktui.remote.hosts import HostLink
    from ktui.remote.source import HostsSource
    from ktui.errors import KtuiError

    link = HostLink("h", ["sh", "-c", script])
    with pytest.raises(KtuiError, match="no host could start tracing"):
        HostsSource([link]).prepare(wait_s=30)
    assert link.status == "failed" and link.reason.startswith(reason), link.reason
