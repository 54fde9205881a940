"""Traceability verdicts from the evidence a kernel shows (synthetic evidence: no kernel needed)."""

from __future__ import annotations

from ktui.catalog.traceability import Evidence, clone_base

MARKERS = {"__noinstr_text_start": 0x1000, "__noinstr_text_end": 0x2000,
           "_sinittext": 0x9000, "_einittext": 0xA000}


def evidence(filter_functions=None, blacklist=None) -> Evidence:
    ev = Evidence.__new__(Evidence)
    ev.tracefs = "/sys/kernel/tracing"
    ev.kprobe_events = True
    ev.filter_functions = filter_functions
    ev.blacklist = blacklist
    ev.why_no_filter = "/sys/kernel/tracing/available_filter_functions is unreadable (Operation not permitted)"
    ev.why_no_blacklist = "/sys/kernel/debug/kprobes/blacklist is absent"
    ev.areas = []
    full = Evidence(MARKERS, mount=False)
    ev.areas, ev._area_starts = full.areas, full._area_starts
    return ev


def test_hidden_evidence_is_unknown_with_both_reasons():
    ev = evidence()
    verdict, why = ev.classify("vfs_read", [0x5000])
    assert verdict == "unknown"
    assert "available_filter_functions is unreadable" in why and "kprobes/blacklist is absent" in why


def test_readable_evidence_decides():
    ev = evidence(filter_functions={"vfs_read"}, blacklist={"do_int3"})
    assert ev.classify("vfs_read", [0x5000])[0] == "traceable"
    assert ev.classify("secret_notrace_fn", [0x5100])[0] == "notrace"
    assert ev.classify("do_int3", [0x5200])[0] == "blacklisted"


def test_areas_duplicates_cold():
    ev = evidence()
    assert ev.classify("exc_page_fault", [0x1800]) [0] == "blacklisted"
    assert ev.classify("start_kernel", [0x9100])[0] == "init"
    v, why = ev.classify("pgd_val", [0x5000, 0x6000])
    assert v == "duplicate" and "0x5000" in why and "0x6000" in why
    v, why = ev.classify("pgd_val", [0, 0])
    assert v == "duplicate" and "kptr_restrict" in why
    assert ev.classify("foo.cold", [0x5000])[0] == "notrace"


def test_clone_base():
    assert clone_base("foo.isra.0") == "foo"
    assert clone_base("foo.constprop.0.isra.0") == "foo"
    assert clone_base("foo.part.1") == "foo"
    assert clone_base("foo.cold") == "foo"
    assert clone_base("foo") is None
