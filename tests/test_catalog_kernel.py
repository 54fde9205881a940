"""The kernel catalog on this machine's real kallsyms, BTF and tracefs."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ktui.catalog import TRACEABILITY, Catalog
from ktui.kernel import tracefs_path

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/sys/kernel/btf/vmlinux") or tracefs_path() is None,
    reason="needs root, kernel BTF and tracefs",
)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ktui-cache")
    old = os.environ.get("KTUI_CACHE_DIR")
    os.environ["KTUI_CACHE_DIR"] = str(d)
    yield d
    if old is None:
        os.environ.pop("KTUI_CACHE_DIR", None)
    else:
        os.environ["KTUI_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def cat(cache_dir):
    return Catalog.load()


def bpftrace_list(pattern: str) -> list[str] | None:
    if shutil.which("bpftrace") is None:
        return None
    r = subprocess.run(["bpftrace", "-l", pattern], capture_output=True, text=True, timeout=60)
    return sorted(line for line in r.stdout.splitlines() if line and not line.endswith(":"))


def test_size_and_kinds(cat):
    kallsyms_text = sum(1 for line in open("/proc/kallsyms") if line.split()[1] in "tTwW")
    assert len(cat) > 10_000
    kinds = {e.kind for e in cat.search("*", limit=None)}
    assert {"kprobe", "tracepoint", "rawtracepoint"} <= kinds
    assert len(cat.search("kprobe:*")) <= kallsyms_text + 60_000


def test_kernel_clone(cat):
    e = cat.lookup("kprobe:kernel_clone")
    assert e is not None and e.kind == "kprobe" and e.symbol == "kernel_clone"
    assert e.return_type == "pid_t"
    assert [(a.name, a.ctype) for a in e.args] == [("args", "struct kernel_clone_args *")]
    assert e.address and e.address in e.addresses
    assert e.traceability in TRACEABILITY


def test_sys_enter_openat_fields(cat):
    e = cat.lookup("tracepoint:syscalls:sys_enter_openat")
    fields = {a.name: a for a in e.args}
    assert {"filename", "flags", "mode"} <= set(fields)
    assert fields["filename"].ctype == "const char *"
    assert fields["filename"].size == 8 and fields["filename"].offset > 0
    assert not any(n.startswith("common_") for n in fields)


def test_sched_switch_fields(cat):
    e = cat.lookup("t:sched:sched_switch")
    f = {a.name: a for a in e.args}
    assert f["prev_comm"].ctype == "char[16]" and f["prev_comm"].size == 16
    assert f["next_pid"].signed is True


def test_tracepoint_count_matches_bpftrace(cat):
    ours = sorted(e.name for e in cat.search("tracepoint:*"))
    theirs = bpftrace_list("tracepoint:*")
    if theirs is None:
        pytest.skip("bpftrace not installed")
    assert ours == theirs


@pytest.mark.parametrize("pattern", ["tracepoint:sched:*", "tracepoint:*:sys_enter_open*", "t:irq:*",
                                     "tracepoint:sched*", "tracepoint:*:*fork*"])
def test_glob_equals_bpftrace(cat, pattern):
    theirs = bpftrace_list(pattern)
    if theirs is None:
        pytest.skip("bpftrace not installed")
    assert sorted(e.name for e in cat.search(pattern)) == theirs


def test_unknown_says_why(cat):
    e = cat.lookup("kprobe:vfs_read")
    aff = os.path.join(tracefs_path(), "available_filter_functions")
    if os.access(aff, os.R_OK):
        try:
            open(aff).close()
            pytest.skip("available_filter_functions is readable here")
        except OSError:
            pass
    assert e.traceability == "unknown"
    assert "available_filter_functions" in e.traceability_reason
    assert "blacklist" in e.traceability_reason


def test_noinstr_is_blacklisted_and_init_is_init(cat):
    bl = cat.search("kprobe:*", traceability=["blacklisted"])
    assert bl and all(".noinstr.text" in e.traceability_reason or "entry text" in e.traceability_reason
                      or ".kprobes.text" in e.traceability_reason or "blacklist" in e.traceability_reason for e in bl)
    init = cat.lookup("kprobe:start_kernel")
    assert init is not None and init.traceability == "init"


def test_duplicates_list_addresses(cat):
    dups = cat.search("kprobe:*", traceability=["duplicate"], limit=5)
    assert dups
    for e in dups:
        assert len(e.addresses) >= 2 and len(set(e.addresses)) == len(e.addresses)
        assert "EADDRNOTAVAIL" in e.traceability_reason


def test_clones_grouped(cat):
    clones = [e for e in cat.search("kprobe:*.isra.*", limit=200)]
    assert clones
    grouped = 0
    for c in clones:
        assert c.clone_of and "." not in c.clone_of
        base = cat.lookup("kprobe:" + c.clone_of)
        if base is not None:
            assert c.symbol in base.clones
            grouped += 1
    assert grouped
    cold = cat.search("kprobe:*.cold", limit=3)
    assert all(e.traceability == "notrace" for e in cold)


def test_inlined_from_btf(cat):
    inl = cat.search("kprobe:*", traceability=["inlined"], limit=3)
    for e in inl:
        assert e.address is None and "inlined" in e.traceability_reason


def test_rawtracepoint_args(cat):
    e = cat.lookup("rawtracepoint:sched_switch")
    assert e is not None and any(a.ctype == "struct task_struct *" for a in e.args)


def test_cache_warm_and_invalidated(cache_dir, monkeypatch):
    import ktui.catalog.kernel_build as kb

    first = Catalog.load()
    warm = Catalog.load()
    assert warm.from_cache and len(warm) == len(first)
    assert warm.lookup("kprobe:kernel_clone").args[0].ctype == "struct kernel_clone_args *"
    real_key = kb.catalog_key

    def other_kernel(fmt):
        key = real_key(fmt)
        key["build_id"] = "another-kernel"
        return key

    monkeypatch.setattr(kb, "catalog_key", other_kernel)
    rebuilt = Catalog.load()
    assert not rebuilt.from_cache
    assert Catalog.load().from_cache  # and the new identity is cached in turn


def test_no_tracefs_is_a_problem_not_a_crash(cache_dir, monkeypatch):
    import ktui.catalog.traceability as tr

    monkeypatch.setattr(tr, "tracefs_path", lambda mount=True: None)
    c = Catalog.load(use_cache=False)
    assert "tracefs" in c.problems and c.search("tracepoint:*") == []
    assert c.lookup("kprobe:kernel_clone") is not None


def test_search_speed_smoke(cat):
    import time

    cat.search("x", mode="fuzzy", limit=1)  # build the search texts
    t = time.perf_counter()
    cat.search("kprobe:*fork*")
    cat.search("sched_sw", mode="fuzzy", limit=50)
    assert time.perf_counter() - t < 2.0  # a smoke check; the real figures are in bench/
