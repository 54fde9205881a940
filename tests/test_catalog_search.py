"""Pattern parsing and search semantics, on a small synthetic catalog (no kernel needed)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ktui.catalog import Catalog, Entry
from ktui.catalog.search import compile_glob, glob_to_regex, literal_prefix, longest_literal
from ktui.errors import KtuiError, UsageError

NAMES = [
    "kprobe:do_sys_openat2", "kprobe:kernel_clone", "kprobe:copy_process", "kprobe:sched_fork",
    "kprobe:foo.isra.0", "kprobe:vfs_read", "kprobe:vfs_readv",
    "tracepoint:sched:sched_switch", "tracepoint:sched:sched_process_fork",
    "tracepoint:syscalls:sys_enter_openat", "tracepoint:irq:irq_handler_entry",
    "rawtracepoint:sched_switch",
]


@pytest.fixture(scope="module")
def cat():
    entries = [Entry(n.split(":", 1)[0], n, n.split(":", 1)[1], traceability="unknown" if n.startswith("k") else "traceable")
               for n in NAMES]
    return Catalog.from_entries(entries, origin="test")


def names(entries):
    return [e.name for e in entries]


def test_glob_like_bpftrace(cat):
    assert names(cat.search("tracepoint:sched:*")) == ["tracepoint:sched:sched_process_fork", "tracepoint:sched:sched_switch"]
    assert names(cat.search("kprobe:*fork*")) == ["kprobe:sched_fork"]
    assert names(cat.search("t:sched:*")) == names(cat.search("tracepoint:sched:*"))
    assert len(cat.search("*")) == len(NAMES)
    # '*' crosses ':' as in bpftrace
    assert "tracepoint:sched:sched_switch" in names(cat.search("tracepoint:sched*"))
    assert names(cat.search("*:sched_switch")) == ["rawtracepoint:sched_switch", "tracepoint:sched:sched_switch"]


def test_glob_exact_and_classes(cat):
    assert names(cat.search("kprobe:vfs_read")) == ["kprobe:vfs_read"]
    assert names(cat.search("kprobe:vfs_read?")) == ["kprobe:vfs_readv"]
    assert names(cat.search("kprobe:[kc]*")) == ["kprobe:copy_process", "kprobe:kernel_clone"]
    assert names(cat.search("kprobe:[!kc]*_*")) == ["kprobe:do_sys_openat2", "kprobe:sched_fork", "kprobe:vfs_read", "kprobe:vfs_readv"]
    assert names(cat.search("{kprobe,rawtracepoint}:sched_*")) == ["kprobe:sched_fork", "rawtracepoint:sched_switch"]


def test_kind_and_traceability_filters(cat):
    assert names(cat.search("*sched*", kinds=["rawtracepoint"])) == ["rawtracepoint:sched_switch"]
    assert all(e.kind == "kprobe" for e in cat.search("*", kinds="kprobe"))
    assert all(e.traceability == "traceable" for e in cat.search("*", traceability=["traceable"]))
    with pytest.raises(UsageError):
        cat.search("*", kinds=["nope"])
    with pytest.raises(UsageError):
        cat.search("*", traceability=["nope"])


def test_regex(cat):
    assert names(cat.search(r"^kprobe:vfs_read$", mode="regex")) == ["kprobe:vfs_read"]
    assert len(cat.search("fork", mode="regex")) == 2
    with pytest.raises(UsageError, match="invalid"):
        cat.search("(", mode="regex")


def test_fuzzy_ranks_exact_and_prefix_first(cat):
    assert names(cat.search("sched_switch", mode="fuzzy"))[:2] == ["rawtracepoint:sched_switch", "tracepoint:sched:sched_switch"]
    assert names(cat.search("vfs_read", mode="fuzzy"))[0] == "kprobe:vfs_read"
    assert "kprobe:do_sys_openat2" in names(cat.search("dsopen", mode="fuzzy"))
    assert cat.search("zzzz", mode="fuzzy") == []
    assert len(cat.search("s", mode="fuzzy", limit=3)) == 3


def test_lookup(cat):
    assert cat.lookup("kprobe:kernel_clone").symbol == "kernel_clone"
    assert cat.lookup("t:sched:sched_switch").name == "tracepoint:sched:sched_switch"
    assert cat.lookup("kprobe:nope") is None


@pytest.mark.parametrize("bad", ["kprobe:[abc", "kprobe:foo}", "kprobe:{a,b", "kprobe:x\\", "kprobe:[z-a]*"])
def test_invalid_globs_are_usage_errors(cat, bad):
    with pytest.raises(UsageError) as err:
        cat.search(bad)
    assert str(err.value).endswith(".")


def test_bad_mode(cat):
    with pytest.raises(UsageError):
        cat.search("x", mode="sql")


def test_helpers():
    assert literal_prefix("t:sched:*") == "tracepoint:sched:"
    assert longest_literal("*sched_switch*") == "sched_switch"
    assert re.fullmatch(glob_to_regex("a*b"), "a:x:b")


GLOB_CHARS = st.text(alphabet=st.sampled_from(list("ab:*?[]!^{},\\-_.z\n")), max_size=20)


@settings(max_examples=500, deadline=None)
@given(GLOB_CHARS)
def test_glob_parser_total(pattern):
    """Any text either compiles to a glob matching like fnmatch on plain names, or is a UsageError."""
    try:
        rx = compile_glob(pattern)
    except UsageError:
        return
    assert isinstance(rx, re.Pattern)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_search_never_raises_anything_else(pattern):
    entries = [Entry("kprobe", n, n.split(":", 1)[1]) for n in NAMES if n.startswith("kprobe:")]
    c = Catalog.from_entries(entries, origin="prop")
    for mode in ("glob", "regex", "fuzzy"):
        try:
            res = c.search(pattern, mode=mode)
        except KtuiError:
            continue
        assert all(isinstance(e, Entry) for e in res)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abcd_:")), max_size=12),
       st.text(alphabet=st.sampled_from(list("abcd_:*?")), max_size=8))
def test_glob_agrees_with_fnmatch(name, pattern):
    import fnmatch

    expected = fnmatch.fnmatchcase(name, pattern)
    assert bool(compile_glob(pattern).fullmatch(name)) == expected or pattern.startswith(("t:", "k:", "u:"))


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aeiosd_:^$.*+?|()[]\\nk")), min_size=1, max_size=10))
def test_regex_search_equals_per_name_search(pattern):
    entries = [Entry(n.split(":", 1)[0], n, n.split(":", 1)[1]) for n in NAMES]
    c = Catalog.from_entries(entries, origin="prop")
    try:
        got = names(c.search(pattern, mode="regex"))
    except UsageError:
        return
    assert got == [n for n in c.names if re.search(pattern, n)]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("schedwitfork_:o")), min_size=1, max_size=8))
def test_fuzzy_finds_every_subsequence_match(query):
    entries = [Entry(n.split(":", 1)[0], n, n.split(":", 1)[1]) for n in NAMES]
    c = Catalog.from_entries(entries, origin="prop")
    got = set(names(c.search(query, mode="fuzzy", limit=1000)))

    def is_subseq(q, s):
        it = iter(s)
        return all(ch in it for ch in q)

    want = {n for n in c.names if is_subseq(query.lower(), n.split(":", 1)[1].lower())}
    assert got == want


def test_bare_name_matches_last_part(cat):
    assert names(cat.search("sched_switch")) == ["rawtracepoint:sched_switch", "tracepoint:sched:sched_switch"]
    assert names(cat.search("vfs_*")) == ["kprobe:vfs_read", "kprobe:vfs_readv"]


def test_fuzzy_inside_last_part(cat):
    # the gapless chain lies in the event part, not across "sched:"
    assert names(cat.search("schedswitch", mode="fuzzy"))[:2] == ["rawtracepoint:sched_switch", "tracepoint:sched:sched_switch"]


def test_leading_star_keeps_bpftrace_meaning(cat):
    # '*t*' matches the 't' of "tracepoint:" too, as in bpftrace; only bare names get '*:' put in front
    assert len(cat.search("*t*")) == len([n for n in NAMES if "t" in n])
