"""Stack samples for Perfetto, in its native protobuf trace format (`ktui export --format perfetto-proto`).

Perfetto's JSON importer ignores the Chrome format's stackFrames/samples, so sampled stacks go
out as Perfetto's own `PerfSample` packets (the same packets `perf`-style CPU profiles use),
which ui.perfetto.dev shows per thread and as flame graphs. Every event of the recording that
carries a kernel or user stack id (profile probes, perf events, probes with stacks) becomes
one sample at its time, CPU, pid and tid. Frames, function names and callstacks are
interned once on the packet sequence (`InternedData`), callstacks root first (user frames
outermost first, then kernel frames), as Perfetto's `Callstack.frame_ids` wants them.

User stacks come as the kernel walked them: with no frame pointers the walk runs on through
junk that nothing can symbolize. ``trim_frames`` (ktui/formats/rows.py) keeps one "[unknown]"
for such a run instead of up to 127 of them.

Times are the recording's CLOCK_MONOTONIC nanoseconds on Perfetto's default clock. The
encoder below writes only varint and length-delimited fields (the few messages used here);
the field numbers are Perfetto's (protos/perfetto/trace/...), and the tests parse the
output with Perfetto's own generated classes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import IO

from ktui.formats.rows import UNKNOWN, trim_frames
from ktui.recording.reader import RecordingReader

SEQUENCE_ID = 1
SEQ_INCREMENTAL_STATE_CLEARED = 1
SEQ_NEEDS_INCREMENTAL_STATE = 2
MODE_KERNEL, MODE_USER = 1, 2

# Field numbers (perfetto_trace.proto)
TRACE_PACKET = 1
PKT_PROCESS_TREE, PKT_TIMESTAMP, PKT_SEQ_ID, PKT_INTERNED, PKT_SEQ_FLAGS, PKT_PERF_SAMPLE = 2, 8, 10, 12, 13, 66
PKT_FIRST_ON_SEQUENCE = 87
PS_CPU, PS_PID, PS_TID, PS_CALLSTACK, PS_CPU_MODE = 1, 2, 3, 4, 5
ID_FUNCTION_NAMES, ID_FRAMES, ID_CALLSTACKS, ID_MAPPING_PATHS, ID_MAPPINGS = 5, 6, 7, 17, 19
STR_IID, STR_STR = 1, 2
FRAME_IID, FRAME_FUNCTION, FRAME_MAPPING, FRAME_REL_PC = 1, 2, 3, 4
CS_IID, CS_FRAMES = 1, 2
MAP_IID, MAP_PATHS = 1, 7
PT_PROCESSES, PT_THREADS = 1, 2
PROC_PID, PROC_PPID, PROC_CMDLINE = 1, 2, 3
THREAD_TID, THREAD_NAME, THREAD_TGID = 1, 2, 3


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32/int64 values are their two's complement, as protobuf does
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, data: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(data)) + data


class _Interner:
    """Function names, frames and callstacks handed out once on the sequence; new ones are sent
    with the packet that first uses them."""

    def __init__(self) -> None:
        self.names: dict[str, int] = {}
        self.frames: dict[tuple[int, str], int] = {}
        self.callstacks: dict[tuple[int, ...], int] = {}
        self._new: list[bytes] = []

    def _name(self, name: str) -> int:
        iid = self.names.get(name)
        if iid is None:
            iid = self.names[name] = len(self.names) + 1
            self._new.append(_bytes(ID_FUNCTION_NAMES, _int(STR_IID, iid) + _bytes(STR_STR, name.encode())))
        return iid

    def _frame(self, mapping: int, name: str) -> int:
        iid = self.frames.get((mapping, name))
        if iid is None:
            fn = self._name(name)
            iid = self.frames[(mapping, name)] = len(self.frames) + 1
            self._new.append(_bytes(ID_FRAMES, _int(FRAME_IID, iid) + _int(FRAME_FUNCTION, fn)
                                    + _int(FRAME_MAPPING, mapping) + _int(FRAME_REL_PC, 0)))
        return iid

    def callstack(self, kernel: Sequence[str], user: Sequence[str]) -> int:
        ids = tuple([self._frame(USER_MAPPING, f) for f in reversed(user)]
                    + [self._frame(KERNEL_MAPPING, f) for f in reversed(kernel)])
        iid = self.callstacks.get(ids)
        if iid is None:
            iid = self.callstacks[ids] = len(self.callstacks) + 1
            self._new.append(_bytes(ID_CALLSTACKS, _int(CS_IID, iid) + b"".join(_int(CS_FRAMES, f) for f in ids)))
        return iid

    def take_new(self) -> bytes:
        out = b"".join(self._new)
        self._new.clear()
        return out


KERNEL_MAPPING, USER_MAPPING = 1, 2


def _mappings() -> bytes:
    """Two mappings: the kernel and user space (frames carry names, not file offsets)."""
    out = b""
    for iid, path in ((KERNEL_MAPPING, "[kernel.kallsyms]"), (USER_MAPPING, "[user]")):
        out += _bytes(ID_MAPPING_PATHS, _int(STR_IID, iid) + _bytes(STR_STR, path.encode()))
        out += _bytes(ID_MAPPINGS, _int(MAP_IID, iid) + _int(MAP_PATHS, iid))
    return out


def _packet(body: bytes) -> bytes:
    return _bytes(TRACE_PACKET, body)


def export_perfetto_proto(reader: RecordingReader, out: IO[bytes], *, pid: int | None = None,
                          probe_ids: Collection[int] | None = None) -> dict[str, int]:
    """Write the stack samples as a Perfetto protobuf trace; returns counts (samples, callstacks, frames)."""
    interner = _Interner()
    out.write(_packet(_int(PKT_SEQ_ID, SEQUENCE_ID) + _int(PKT_SEQ_FLAGS, SEQ_INCREMENTAL_STATE_CLEARED)
                      + _int(PKT_FIRST_ON_SEQUENCE, 1) + _bytes(PKT_INTERNED, _mappings())))
    stacks: dict[tuple[int, int, int], int] = {}  # (kstack id, ustack id, pid) -> callstack iid
    threads: dict[int, tuple[int, str]] = {}
    samples = 0
    for arr in reader.events(probe_ids=probe_ids, pid=pid):
        has = (arr["kstack"] >= 0) | (arr["ustack"] >= 0)
        if not has.any():
            continue
        arr = arr[has]
        cols = {k: arr[k].tolist() for k in ("ts", "cpu", "pid", "tid", "kstack", "ustack")}
        comms = arr["comm"].tolist()
        for i in range(len(arr)):
            p, t, ks, us = cols["pid"][i], cols["tid"][i], cols["kstack"][i], cols["ustack"][i]
            key = (ks, us, p if us >= 0 else 0)
            iid = stacks.get(key)
            if iid is None:
                kernel = trim_frames(reader.stack_frames(ks)) if ks >= 0 else []
                user = trim_frames(reader.stack_frames(us, user=True, pid=p)) if us >= 0 else []
                iid = stacks[key] = interner.callstack(kernel, user)
            new = interner.take_new()
            sample = (_int(PS_CPU, cols["cpu"][i]) + _int(PS_PID, p) + _int(PS_TID, t) + _int(PS_CALLSTACK, iid)
                      + _int(PS_CPU_MODE, MODE_KERNEL if ks >= 0 else MODE_USER))
            out.write(_packet(_int(PKT_TIMESTAMP, cols["ts"][i]) + _int(PKT_SEQ_ID, SEQUENCE_ID)
                              + _int(PKT_SEQ_FLAGS, SEQ_NEEDS_INCREMENTAL_STATE)
                              + (_bytes(PKT_INTERNED, new) if new else b"") + _bytes(PKT_PERF_SAMPLE, sample)))
            threads.setdefault(t, (p, comms[i].decode("utf-8", "replace")))
            samples += 1
    # Thread and process names, so the UI groups samples under their programs.
    tree = b""
    for p in sorted({p for p, _ in threads.values()}):
        comm = next((c for t, (pp, c) in threads.items() if pp == p and t == p), None) or \
            next(c for pp, c in threads.values() if pp == p)
        tree += _bytes(PT_PROCESSES, _int(PROC_PID, p) + _int(PROC_PPID, 0) + _bytes(PROC_CMDLINE, comm.encode()))
    for t, (p, comm) in sorted(threads.items()):
        tree += _bytes(PT_THREADS, _int(THREAD_TID, t) + _bytes(THREAD_NAME, comm.encode()) + _int(THREAD_TGID, p))
    if tree:
        out.write(_packet(_int(PKT_SEQ_ID, SEQUENCE_ID) + _bytes(PKT_PROCESS_TREE, tree)))
    return {"samples": samples, "callstacks": len(interner.callstacks), "frames": len(interner.frames)}


__all__ = ["UNKNOWN", "export_perfetto_proto", "trim_frames"]
