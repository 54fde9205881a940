"""The kprobe_events fetch language compiled by ktui gives the values the kernel's
kprobe tracer would print. This kernel has no kprobes, so the same fetch code runs
in a uprobe on a user function with the seed's exact signature and argument values
(tcp_select_initial_window's, from ../shared/seeds/): registers, nested dereferences
and stack slots go through the same code paths; only the read helper is _user."""

from __future__ import annotations

import ctypes as ct
import dataclasses

import numpy as np
import pytest

from compiler_cases import FACTS_HERE, KPROBE_EVENTS_SEED
from helpers import build_c
from ktui.compiler import compile_session
from ktui.compiler.control import set_enabled
from ktui.compiler.verify import bpf_class
from ktui.probes.model import ProbeKind
from ktui.probes.spec import parse_spec

TARGET_C = r"""
#include <stdlib.h>
volatile unsigned long sink;
/* Reads what its pointers point to, so the caller really stores those values. */
__attribute__((noinline, used)) void ktui_tcp_like(const void *sk, int space, unsigned mss, unsigned *rcv_wnd,
        unsigned *window_clamp, int wscale_ok, unsigned char *rcv_wscale, unsigned init_rcv_wnd) {
    sink = *(const unsigned long *)sk + *rcv_wnd + *window_clamp + *rcv_wscale + space + mss + wscale_ok + init_rcv_wnd;
}
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 0;
    unsigned long sk = 0x100007f0100007fUL;
    unsigned rcv = 0, clamp = 7;
    unsigned char ws = 15;
    for (long i = 0; i < n; i++)
        ktui_tcp_like(&sk, 43690, 65495, &rcv, &clamp, 1, &ws, 4294967295u);
    return 0;
}
"""

# The seed line, and the same line with the stack arguments where x86_64 puts them
# (the return address is at +0(%sp), so the 7th argument is at +8 and the 8th at +16).
CORRECTED = (KPROBE_EVENTS_SEED.replace("rsv_wscale=+0(+0(%sp)):u8", "rsv_wscale=+0(+8(%sp)):u8")
             .replace("init_rcv_wnd=+4(%sp):u32", "init_rcv_wnd=+16(%sp):u32") + " ra=+0(%sp):x64 a7=$arg7:x64")


def _as_uprobe(line: str, binary: str):
    probe = parse_spec(line)[0]
    return dataclasses.replace(probe, kind=ProbeKind.UPROBE, target="ktui_tcp_like", binary=binary)


@pytest.mark.live
def test_kprobe_events_line_values_match_what_the_kernel_tracer_prints():
    import subprocess

    from ktui.headers import ensure_headers

    binary = str(build_c("tcp-like", TARGET_C))
    probes = [_as_uprobe(KPROBE_EVENTS_SEED, binary), _as_uprobe(CORRECTED, binary)]
    prog = compile_session(probes, facts=FACTS_HERE)
    assert [cp.error for cp in prog.probes] == [None, None]
    ensure_headers()
    from ktui.engine.attach import attach_plan, detach

    b = bpf_class()(text=prog.c_text.encode())
    attached = []
    try:
        got = {0: [], 1: []}
        for cp in prog.probes:
            set_enabled(b, cp.probe_id, True)
            attached += attach_plan(b, cp.attach)  # the engine's attach keeps both fds (BCC's records keep one)

            def callback(_ctx, data, size, pid=cp.probe_id):
                got[pid].append(ct.string_at(data, size))

            b[cp.ring.encode()].open_ring_buffer(callback)
        n = 50
        child = subprocess.Popen([binary, str(n)])
        child.wait()
        detach(attached)
        b.ring_buffer_consume()
        seed = np.frombuffer(b"".join(got[0]), prog.probes[0].layout.dtype)
        fixed = np.frombuffer(b"".join(got[1]), prog.probes[1].layout.dtype)
    finally:
        detach(attached)
        b.cleanup()
    seed, fixed = seed[seed["pid"] == child.pid], fixed[fixed["pid"] == child.pid]
    assert len(seed) == len(fixed) == n
    # The seed's own trace line: sk=0x100007f0100007f space=43690 mss=65495 rcv_wnd=0
    # window_clamp=0 wscale_ok=1 rsv_wscale=15 init_rcv_wnd=4294967295 (window_clamp is 7 here).
    expected = {"sk": 0x100007F0100007F, "space": 43690, "mss": 65495, "rcv_wnd": 0, "window_clamp": 7,
                "wscale_ok": 1, "rsv_wscale": 15, "init_rcv_wnd": 4294967295}
    for name, value in expected.items():
        assert (fixed[name] == value).all(), (name, fixed[name][:3])
    assert (fixed["flags"] == 0).all()
    layout = {f.name: (f.dtype, f.display) for f in prog.probes[1].layout.fields}
    assert layout["sk"] == ("<u8", "x") and layout["space"] == ("<i4", "s") and layout["rsv_wscale"] == ("<u1", "u")
    assert (fixed["a7"] != 0).all()  # $arg7: the 7th argument, the pointer to rcv_wscale
    # The seed line as written reads +4(%sp): the upper half of the return address.
    assert (seed["init_rcv_wnd"] == (fixed["ra"] >> 32)).all()
    for name in ("sk", "space", "mss", "rcv_wnd", "window_clamp", "wscale_ok"):
        assert (seed[name] == fixed[name]).all(), name
