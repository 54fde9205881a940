"""Issue 12 in the VM (kprobes exist only here): what the user points at is what the kernel
fetches and filters. A string argument by name from BTF, filtered in the kernel; a struct
member through a pointer (skb->len) by name, in each dialect, with values checked against
what the test itself sent. Counts are exact: each test keys its events to what it alone did
(a unique file name, datagram sizes no one else sends on the VM's loopback)."""

from __future__ import annotations

import uuid
from pathlib import Path

from kernel_live import trace, udp_datagrams


def _probe(spec: str, flt: str = ""):
    from ktui.probes.spec import parse_spec

    probes = parse_spec(spec)
    assert len(probes) == 1, probes
    probes[0].filter = flt
    return probes[0]


def _strings(column) -> list[str]:
    return [bytes(v).split(b"\0")[0].decode() for v in column]


def test_do_sys_openat2_filename_filter_gives_exactly_the_childs_opens(tmp_path):
    """kprobe:do_sys_openat2, filename by name from BTF (a user string), filtered in the kernel:
    N opens of a named file give N events; opens of other files in between give none."""
    n = 7
    path = Path("/tmp") / f"ktui-open-{uuid.uuid4().hex[:12]}"  # short: it fits the 64-byte string fetch
    path.write_text("x")
    other = tmp_path / "other"
    other.write_text("y")
    probe = _probe("kprobe:do_sys_openat2", f'filename == "{path}"')

    def opens() -> None:
        for _ in range(n):
            with open(path):
                pass
            with open(other):
                pass

    try:
        traced = trace([probe], opens)
    finally:
        path.unlink()
    events = traced.of(0)
    assert len(events) == n
    assert _strings(events["filename"]) == [str(path)] * n
    totals = traced.counters[0].totals()
    assert totals["filtered"] >= n  # the other file's opens were seen and dropped in the kernel
    assert totals["hits"] == totals["delivered"] + totals["dropped"] + totals["filtered"]


def _ip_len(payload: int) -> int:
    return payload + 8 + 20  # skb->len at ip_rcv: IPv4 header + UDP header + payload


def test_ip_rcv_skb_len_by_member_name_equals_the_packets_sent():
    """kprobe:ip_rcv with skb->len named in the filter (bpftrace's spelling, args-> too): the member
    is fetched through the skb pointer with offsets from BTF and recorded as skb_len; values
    equal the lengths of the datagrams sent, and the filter keeps exactly the large ones."""
    small, large, n_small, n_large = 301, 1201, 40, 25
    floor = _ip_len(large) - 1
    probe = _probe("kprobe:ip_rcv", f"args->skb->len > {floor} && skb->len < {_ip_len(large) + 1}")
    traced = trace([probe], lambda: (udp_datagrams(n_small, small), udp_datagrams(n_large, large)))
    assert traced.result == (n_small, n_large)
    events = traced.of(0)
    assert list(events.dtype.names).count("skb_len") == 1
    assert len(events) == n_large
    assert (events["skb_len"] == _ip_len(large)).all(), events["skb_len"]
    totals = traced.counters[0].totals()
    assert totals["filtered"] >= n_small


def test_ip_rcv_member_in_systemtap_and_kprobe_events_spellings():
    """$skb->len (SystemTap) and len=skb->len / $arg1->dev->mtu (kprobe_events with BTF) fetch the
    same member: every datagram's length, and the loopback device's MTU."""
    payload, n = 777, 30
    stap = _probe('probe kernel.function("ip_rcv") { printf("%d %d", $skb->len, $skb->dev->mtu) }')
    kev = _probe("p:ipr ip_rcv len=skb->len mtu=$arg1->dev->mtu:u32")
    traced = trace([stap, kev], lambda: udp_datagrams(n, payload))
    assert traced.result == n
    with open("/sys/class/net/lo/mtu") as f:
        mtu = int(f.read())
    a, b = traced.of(0), traced.of(1)
    mine_a = a[a["skb_len"] == _ip_len(payload)]
    mine_b = b[b["len"] == _ip_len(payload)]
    assert len(mine_a) == len(mine_b) == n  # loopback only: every datagram ours, each seen once
    assert (mine_a["skb_dev_mtu"] == mtu).all() and (mine_b["mtu"] == mtu).all()
