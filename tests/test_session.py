"""Session files: exact round trip, atomic save, clear errors, no C through the file, re-resolving."""

from __future__ import annotations

import errno
import os
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ktui.errors import FileFormatError, KtuiError
from ktui.kernel import KernelIdentity
from ktui.probes.model import (Action, ActionKind, Arg, Deref, Fetch, Probe, ProbeKind, Retval, TargetProcess,
                               ValueType)
from ktui.session import Session, reresolve

HERE = KernelIdentity("6.18.0", "#1", "x86_64", "aaaa")
THERE = KernelIdentity("6.1.0-18-amd64", "#1 Debian", "x86_64", "bbbb")


def _session() -> Session:
    return Session(
        probes=[
            Probe(ProbeKind.KPROBE, "do_sys_openat2",
                  fetches=[Fetch("fname", Deref(0, Arg(index=2), user=True), ValueType.parse("ustring")),
                           Fetch("dfd", Arg(name="dfd"))],
                  filter='comm == "bash" && dfd < 0', actions=[Action(), Action(ActionKind.HIST, value="dfd")]),
            Probe(ProbeKind.KRETPROBE, "do_sys_openat2", fetches=[Fetch("ret", Retval(), ValueType.parse("s64"))]),
            Probe(ProbeKind.TRACEPOINT, "sched:sched_switch", fetches=[Fetch("next_pid", Arg(name="next_pid"))]),
            Probe(ProbeKind.UPROBE, "readline", binary="/bin/bash"),
            Probe(ProbeKind.PROFILE, "", frequency=99, actions=[Action(ActionKind.STACKS)]),
        ],
        target=TargetProcess(command=["ls", "-l", "/tmp"]),
        layout={"panes": ["stream", "cpus", "stacks"], "split": {"left": 0.3}},
        settings={"theme": "dark", "rate_hz": 30},
        kernel=THERE,
    )


def test_round_trip_is_exact(tmp_path):
    s = _session()
    path = tmp_path / "s.toml"
    s.save(path)
    back = Session.load(path)
    assert back == s
    text = path.read_text()
    assert text.startswith("version = 1\n")
    assert "release = \"6.1.0-18-amd64\"" in text and "build_id = \"bbbb\"" in text


def test_save_replaces_atomically_and_is_owner_only(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("version = 1\n")
    os.chmod(path, 0o644)
    _session().save(path)
    assert os.stat(path).st_mode & 0o777 == 0o600  # sessions are private like recordings (issue 11)
    assert sorted(os.listdir(tmp_path)) == ["s.toml"]
    new = tmp_path / "new.toml"
    old_umask = os.umask(0)
    try:
        _session().save(new)
    finally:
        os.umask(old_umask)
    assert os.stat(new).st_mode & 0o777 == 0o600


def test_save_replaces_a_link_and_never_writes_through_it(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.chmod(victim, 0o644)
    link = tmp_path / "s.toml"
    link.symlink_to(victim)
    _session().save(link)
    assert victim.read_text() == "precious\n" and os.stat(victim).st_mode & 0o777 == 0o644
    assert not link.is_symlink() and Session.load(link).probes == _session().probes
    assert os.stat(link).st_mode & 0o777 == 0o600
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(KtuiError, match="is a directory"):
        _session().save(tmp_path / "dir.toml")
    assert sorted(os.listdir(tmp_path)) == ["dir.toml", "s.toml", "victim"]


def test_failed_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "s.toml"
    old = Session(probes=[Probe(ProbeKind.TRACEPOINT, "sched:sched_switch")])
    old.save(path)
    before = path.read_bytes()

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(KtuiError, match="previous file is unchanged") as err:
        _session().save(path)
    assert "s.toml" in str(err.value) and "No space" in str(err.value)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["s.toml"]  # no temp file left behind


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny tmpfs needs root")
def test_a_really_full_disk_leaves_the_old_file_whole(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(mnt)], check=True)
    try:
        path = mnt / "s.toml"
        Session(probes=[Probe(ProbeKind.TRACEPOINT, "sched:sched_switch")]).save(path)
        before = path.read_bytes()
        big = _session()
        big.settings["notes"] = "x" * 20000  # more than the disk holds
        with pytest.raises(KtuiError, match="unchanged"):
            big.save(path)
        assert path.read_bytes() == before
        assert os.listdir(mnt) == ["s.toml"]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.parametrize("text, key, problem", [
    ("version = 1\ncolour = 1\n", "colour", "unknown key"),
    ("probes = []\n", "version", "missing"),
    ("version = \"1\"\n", "version", "integer"),
    ("version = 2\n", "version", "version 2; this ktui reads version 1"),
    ("version = 1\nkernel = 3\n", "kernel", "must be a table"),
    ("version = 1\n[kernel]\nrelease = 6\n", "kernel.release", "string"),
    ("version = 1\n[kernel]\nflavour = \"x\"\n", "kernel.flavour", "unknown key"),
    ("version = 1\n[target]\npid = -4\n", "target.pid", "positive"),
    ("version = 1\n[target]\ncommand = \"ls -l\"\n", "target.command", "list of strings"),
    ("version = 1\n[target]\npid = 4\ncommand = [\"ls\"]\n", "target", "not both"),
    ("version = 1\nprobes = 3\n", "probes", "array of tables"),
    ("version = 1\n[settings]\nwhen = 1979-05-27\n", "settings.when", "not a setting value"),
    ("version = 1\n[[probes]]\nkind = \"kprobe\"\ntarget = \"x\"\nflavour = 1\n", "probes[0]", "unknown key"),
    ("version = 1\n[[probes]]\nkind = \"magic\"\n", "probes[0]", "unknown probe kind"),
    ("version = 1\n[[probes]]\nkind = \"kprobe\"\ntarget = \"x\"\noffset = \"4\"\n", "probes[0]", "offset"),
    ("version = 1\n[[probes]]\nkind = \"kprobe\"\ntarget = \"x\"\n[[probes.fetches]]\nname = \"a\"\n"
     "[probes.fetches.expr]\nop = \"Arg\"\nindex = 99\n", "probes[0].fetches[0]", "argument index"),
])
def test_bad_files_name_file_key_and_problem(tmp_path, text, key, problem):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(FileFormatError) as err:
        Session.load(path)
    msg = str(err.value)
    assert msg.startswith(str(path)), msg
    assert key in msg and problem in msg, msg


@pytest.mark.parametrize("probe_toml", [
    'kind = "kprobe"\ntarget = "f); bpf_probe_write_user(0"',
    'kind = "kprobe"\ntarget = "f"\nname = "x; int y"',
    'kind = "kprobe"\ntarget = "f"\n[[probes.fetches]]\nname = "a[0]"\n[probes.fetches.expr]\nop = "Arg"\nindex = 1',
    'kind = "kprobe"\ntarget = "f"\n[[probes.fetches]]\nname = "a"\n[probes.fetches.expr]\nop = "Reg"\nname = "di); x("',
    'kind = "kprobe"\ntarget = "f"\n[[probes.fetches]]\nname = "a"\n[probes.fetches.expr]\nop = "Member"\n'
    'path = ["x->y"]\n[probes.fetches.expr.base]\nop = "Arg"\nindex = 1',
    'kind = "kprobe"\ntarget = "f"\n[[probes.fetches]]\nname = "a"\n[probes.fetches.expr]\nop = "Builtin"\nname = "system"',
    'kind = "kprobe"\ntarget = "f"\n[[probes.fetches]]\nname = "a"\n[probes.fetches.expr]\nop = "CCode"\ntext = "x"',
])
def test_no_c_can_come_in_through_a_session(tmp_path, probe_toml):
    path = tmp_path / "evil.toml"
    path.write_text("version = 1\n[[probes]]\n" + probe_toml + "\n")
    with pytest.raises(FileFormatError, match="evil.toml"):
        Session.load(path)


def test_not_a_session(tmp_path):
    p = tmp_path / "x.toml"
    p.write_bytes(b"\xff\xfe binary")
    with pytest.raises(FileFormatError, match="not UTF-8"):
        Session.load(p)
    p.write_text("[[[")
    with pytest.raises(FileFormatError, match="not valid TOML"):
        Session.load(p)
    with pytest.raises(FileFormatError, match="no such"):
        Session.load(tmp_path / "none.toml")


class FakeEntry:
    def __init__(self, args=(), traceability="traceable", reason=""):
        self.traceability = traceability
        self.traceability_reason = reason
        self.args = [type("A", (), {"name": a})() for a in args]


class FakeCatalog:
    def __init__(self, entries):
        self.entries = entries
        self.asked = []

    def lookup(self, name):
        self.asked.append(name)
        return self.entries.get(name)


def test_reresolve_on_another_kernel_marks_what_no_longer_fits():
    s = _session()
    cat = FakeCatalog({
        "kprobe:do_sys_openat2": FakeEntry(args=["dfd", "filename", "how"]),
        "tracepoint:sched:sched_switch": FakeEntry(args=["prev_pid", "next_comm"]),  # next_pid renamed away
    })
    warnings = reresolve(s, cat, identity=HERE)
    assert "built on kernel 6.1.0-18-amd64 (build id bbbb); this is 6.18.0" in warnings[0]
    assert set(s.unfit) == {2}  # the uprobe's /bin/bash exists here, the profile fits anywhere
    assert "next_pid" in s.unfit[2] and "gone" in s.unfit[2]
    assert len(warnings) == 1 + len(s.unfit)


def test_reresolve_reasons_for_missing_and_untraceable_functions():
    s = Session(probes=[Probe(ProbeKind.KPROBE, "gone_fn"), Probe(ProbeKind.KPROBE, "hidden_fn"),
                        Probe(ProbeKind.TRACEPOINT, "foo:bar"), Probe(ProbeKind.UPROBE, "main", binary="/no/such")],
                kernel=THERE)
    cat = FakeCatalog({"kprobe:hidden_fn": FakeEntry(traceability="notrace", reason="not in available_filter_functions")})
    reresolve(s, cat, identity=HERE)
    assert s.unfit == {
        0: "kernel function gone_fn does not exist on this kernel",
        1: "hidden_fn is notrace here (not in available_filter_functions)",
        2: "tracepoint foo:bar does not exist on this kernel",
        3: "the binary /no/such does not exist here",
    }


def test_same_kernel_needs_no_reresolving():
    s = _session()
    s.kernel = HERE
    cat = FakeCatalog({})
    assert reresolve(s, cat, identity=HERE) == [] and s.unfit == {} and cat.asked == []


@pytest.mark.live
def test_reresolve_against_the_real_catalog():
    from ktui.catalog import Catalog

    cat = Catalog.load()
    s = Session(probes=[Probe(ProbeKind.TRACEPOINT, "sched:sched_switch"),
                        Probe(ProbeKind.TRACEPOINT, "sched:no_such_event_here")], kernel=THERE)
    reresolve(s, cat)
    assert list(s.unfit) == [1]


toml_values = st.recursive(
    st.one_of(st.integers(-2**63, 2**63 - 1), st.text(max_size=20), st.booleans(),
              st.floats(allow_nan=False, allow_infinity=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["version", "kernel", "target", "probes", "layout", "settings", "x"]),
                       toml_values, max_size=6))
def test_any_structure_gives_a_session_or_a_file_format_error(data):
    try:
        s = Session.from_dict(data, "fuzz.toml")
    except FileFormatError:
        return
    again = Session.from_toml(s.to_toml())
    assert again == s


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_a_session_or_a_file_format_error(text):
    try:
        Session.from_toml(text, "fuzz.toml")
    except FileFormatError:
        pass
