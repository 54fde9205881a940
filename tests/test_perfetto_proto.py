"""`ktui export --format perfetto-proto`: stack samples as Perfetto's own protobuf trace, checked with
Perfetto's generated classes (its trace_processor cannot run here: it downloads a binary)."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf.unknown_fields import UnknownFieldSet
from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

from helpers import busy_loop_binary
from ktui.cli import main
from ktui.events import ProbeLayout
from ktui.formats.perfetto_proto import UNKNOWN, trim_frames
from ktui.kernel import kernel_identity
from ktui.recording import RecordingWriter
from ktui.recording.reader import RecordingReader


def _parse(path) -> pb.Trace:
    trace = pb.Trace()
    trace.ParseFromString(path.read_bytes())
    return trace


def _no_unknown_fields(msg) -> None:
    """Every field we wrote is one Perfetto's schema knows (a wrong number would land here)."""
    assert len(UnknownFieldSet(msg)) == 0, msg
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        for item in (value if field.is_repeated else [value]):
            _no_unknown_fields(item)


def _samples(trace: pb.Trace) -> list[tuple[pb.TracePacket, list[str]]]:
    """Each PerfSample with its frames (root first), resolved only through interned data sent before or with it."""
    names: dict[int, str] = {}
    frames: dict[int, int] = {}
    stacks: dict[int, list[int]] = {}
    out = []
    for packet in trace.packet:
        assert packet.trusted_packet_sequence_id == 1
        for s in packet.interned_data.function_names:
            names[s.iid] = s.str.decode()
        for f in packet.interned_data.frames:
            assert f.function_name_id in names and f.mapping_id in (1, 2)
            frames[f.iid] = f.function_name_id
        for c in packet.interned_data.callstacks:
            assert all(i in frames for i in c.frame_ids)
            stacks[c.iid] = list(c.frame_ids)
        if packet.HasField("perf_sample"):
            assert packet.sequence_flags == pb.TracePacket.SEQ_NEEDS_INCREMENTAL_STATE
            out.append((packet, [names[frames[i]] for i in stacks[packet.perf_sample.callstack_iid]]))
    return out


@pytest.mark.live
def test_profile_samples_are_perfetto_samples_with_their_stacks(tmp_path):
    rec = tmp_path / "p.ktrec"
    assert main(["record", "profile:hz:199", "-o", str(rec), "-q", "--", str(busy_loop_binary()), "1500"]) == 0
    out = tmp_path / "p.pftrace"
    assert main(["export", str(rec), "-f", "perfetto-proto", "-o", str(out)]) == 0
    trace = _parse(out)
    _no_unknown_fields(trace)
    assert trace.packet[0].sequence_flags == pb.TracePacket.SEQ_INCREMENTAL_STATE_CLEARED
    samples = _samples(trace)
    expected = []
    with RecordingReader.open(rec) as reader:
        for arr in reader.events():
            for r in arr[(arr["kstack"] >= 0) | (arr["ustack"] >= 0)]:
                kernel = trim_frames(reader.stack_frames(int(r["kstack"])))
                user = trim_frames(reader.stack_frames(int(r["ustack"]), user=True, pid=int(r["pid"])))
                expected.append((int(r["ts"]), int(r["cpu"]), int(r["pid"]), int(r["tid"]),
                                 list(reversed(user)) + list(reversed(kernel))))
    assert expected and len(samples) == len(expected)  # how many depends on the CPU the loop got
    got = [(p.timestamp, p.perf_sample.cpu, p.perf_sample.pid, p.perf_sample.tid, frames) for p, frames in samples]
    assert sorted(got) == sorted(expected)
    assert any(frames and frames[-1] != UNKNOWN for *_, frames in got)  # kernel frames, symbolized
    for *_, frames in got:  # never a run of unknown frames
        assert all(not (a == b == UNKNOWN) for a, b in zip(frames, frames[1:]))
    tree = [p.process_tree for p in trace.packet if p.HasField("process_tree")]
    assert tree and {t.tid for t in tree[0].threads} == {s[3] for s in got}


def test_a_user_stack_walked_into_junk_is_not_padded(tmp_path):
    """127 addresses, two of them in known functions: the junk beyond is no frames, not 125 '[unknown]'."""
    layout = ProbeLayout(0, "cpu-clock", "software:cpu-clock:1000000")
    path = tmp_path / "s.ktrec"
    w = RecordingWriter.create(path, kernel_identity(), [layout])
    arr = np.zeros(3, dtype=layout.dtype)
    arr["ts"] = [1000, 2000, 3000]
    arr["pid"] = arr["tid"] = 77
    arr["comm"] = b"app"
    arr["kstack"] = -1
    arr["ustack"] = [5, 5, 6]
    w.append(0, arr)
    w.add_stack_ids(user={5: [0x2010, 0x1010] + list(range(8, 8 + 125)), 6: [0x7, 0x2004, 0x8, 0x9]})
    w.add_symbols(user={(77, 0x1000): "main", (77, 0x2000): "work"})
    w.close()
    out = tmp_path / "s.pftrace"
    assert main(["export", str(path), "-f", "perfetto-proto", "-o", str(out)]) == 0
    samples = _samples(_parse(out))
    assert [frames for _, frames in samples] == [["main+0x10", "work+0x10"]] * 2 + [["work+0x4", UNKNOWN]]
    assert (out.stat().st_mode & 0o777) == 0o600


def test_trim_frames():
    assert trim_frames([]) == []
    assert trim_frames(["a", "b"]) == ["a", "b"]
    assert trim_frames([UNKNOWN] * 127) == [UNKNOWN]
    assert trim_frames(["a", UNKNOWN, "0x7f00", "b", UNKNOWN, UNKNOWN]) == ["a", UNKNOWN, "b"]
    assert trim_frames(["libc.so.6+0x2724a", "0xdeadbeef"]) == ["libc.so.6+0x2724a"]
