"""`ktui list`: output format, errors as one sentence with a non-zero exit, and `| head`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ktui.cli import main
from ktui.sysfacts import kprobes_available

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "tests" / "fixtures" / "catalog" / "probe_me.c"
KERNEL = os.geteuid() == 0 and os.path.exists("/sys/kernel/btf/vmlinux")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KTUI_CACHE_DIR", str(tmp_path / "cache"))


def ktui(*args, **kw):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "ktui", "list", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120, **kw)


@pytest.mark.skipif(not KERNEL, reason="needs root and kernel BTF")
def test_list_tracepoints_and_verbose(capsys):
    assert main(["list", "tracepoint:sched:*"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "tracepoint:sched:sched_switch" in out and all(line.startswith("tracepoint:sched:") for line in out)
    assert main(["list", "-v", "tracepoint:syscalls:sys_enter_openat"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "tracepoint:syscalls:sys_enter_openat"
    assert "    const char * filename" in out and "    int flags" in out
    assert main(["list", "-v", "kprobe:kernel_clone"]) == 0
    out = capsys.readouterr().out
    assert "    struct kernel_clone_args * args" in out and "pid_t retval" in out


@pytest.mark.skipif(not KERNEL, reason="needs root and kernel BTF")
def test_json(capsys):
    assert main(["list", "--json", "kprobe:kernel_clone"]) == 0
    data = [json.loads(line) for line in capsys.readouterr().out.splitlines()]  # JSON Lines
    assert data[0]["name"] == "kprobe:kernel_clone" and data[0]["return_type"] == "pid_t"
    assert data[0]["args"] == [{"name": "args", "ctype": "struct kernel_clone_args *"}]


@pytest.mark.skipif(not KERNEL, reason="needs root and kernel BTF")
def test_everything_does_not_crash_and_head_is_quiet():
    r = ktui()
    assert r.returncode == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    assert len(lines) > 10_000 and all(":" in line for line in lines[:100])
    p = subprocess.Popen(f"{sys.executable} -m ktui list | head -3", shell=True, cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=120)
    assert len(out.splitlines()) == 3 and "Traceback" not in err and err == ""


@pytest.mark.parametrize("args,code,msg", [
    (["kprobe:[abc"], 2, "never closed"),
    (["--regex", "("], 2, "invalid"),
    (["--kind", "bogus", "*"], 2, "Unknown probe kind"),
])
def test_bad_patterns(args, code, msg):
    if not KERNEL:
        pytest.skip("needs root and kernel BTF")
    r = ktui(*args)
    assert r.returncode == code and msg in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not KERNEL, reason="needs root and kernel BTF")
def test_corrupt_btf(tmp_path):
    raw = Path("/sys/kernel/btf/vmlinux").read_bytes()
    bad = tmp_path / "vmlinux.btf"
    bad.write_bytes(raw[: len(raw) // 2])
    r = ktui("-v", "--btf", str(bad), "kprobe:kernel_clone")
    assert r.returncode == 4 and "truncated" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_binary_listing_and_errors(tmp_path):
    prog = tmp_path / "probe_me"
    subprocess.run(["gcc", "-g", "-O0", "-o", str(prog), str(SRC)], check=True)
    r = ktui("-v", "--binary", str(prog), "add_*")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"uprobe:{prog}:add_points"
    assert "probe_me.c:" in r.stdout and "    const struct point * a" in r.stdout
    r = ktui(f"uprobe:{prog}:main")
    assert r.stdout.strip() == f"uprobe:{prog}:main"
    stripped = tmp_path / "stripped"
    shutil.copy(prog, stripped)
    subprocess.run(["strip", "--strip-all", str(stripped)], check=True)
    r = ktui("--binary", str(stripped))
    assert r.returncode == 4 and "no function symbols" in r.stderr and "Traceback" not in r.stderr
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x7fELF" + b"\x00" * 10)
    r = ktui("--binary", str(junk))
    assert r.returncode == 4 and "Traceback" not in r.stderr


@pytest.mark.skipif(not KERNEL, reason="needs root and kernel BTF")
def test_unreadable_tracefs(monkeypatch, capsys):
    import ktui.catalog.traceability as tr

    monkeypatch.setattr(tr, "tracefs_path", lambda mount=True: None)
    assert main(["list", "--no-cache", "tracepoint:sched:*"]) == 4
    assert "tracefs" in capsys.readouterr().err


@pytest.mark.skipif(not KERNEL, reason="needs root and kernel BTF")
def test_json_lines_reach_a_pipe_at_once():
    """`ktui list --json '*'` takes seconds for everything; the first line is there long before."""
    import select

    p = subprocess.Popen([sys.executable, "-m", "ktui", "list", "--json", "*"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    try:
        ready, _, _ = select.select([p.stdout], [], [], 60)
        assert ready, "no first line within 60 s"
        first = p.stdout.readline()
        assert p.poll() is None, "the first line came only when the whole list was written"
        entry = json.loads(first)
        assert ":" in entry["name"] and "args" in entry and "kind" in entry
        assert json.loads(p.stdout.readline())["name"] > entry["name"]
    finally:
        p.kill()
        p.wait()


PATTERNS = ["tracepoint:sched:*", "tracepoint:*", "t:sched:sched_switch", "sched_switch", "kprobe:vfs_read*",
            "*", "rawtracepoint:sched_*", "tracepoint:syscalls:sys_enter_open*", "kprobe:{vfs_read,vfs_write}",
            "*:sched_sw?tch", "tracepoint:nosuchgroup:*", "kprobe:zzzz_no_such_function"]


@pytest.mark.skipif(not KERNEL, reason="needs root and kernel BTF")
def test_names_from_the_index_are_the_catalogs_own(tmp_path):
    """The fast path (index, tracefs) prints exactly what the full catalog prints, cold and warm."""
    full = {p: ktui("--no-cache", p).stdout for p in PATTERNS}
    assert full["tracepoint:sched:*"] and full["*"].count("\n") > 10_000
    cold = ktui("tracepoint:sched:*")  # only the tracepoint section exists after this one
    assert cold.returncode == 0 and cold.stdout == full["tracepoint:sched:*"]
    for p in PATTERNS:  # the first kprobe pattern builds the whole index, the rest read it
        r = ktui(p)
        # kprobe names are listed here even without kprobes, with the note saying so (nothing else on stderr)
        note = ("ktui: note: this kernel cannot attach these: it has no kprobes (no kprobe_events in tracefs, "
                "no kprobe PMU); tracepoints, uprobes and perf sampling work\n")
        expected = note if p.startswith("kprobe:") and not kprobes_available() else ""
        if full[p]:
            assert r.returncode == 0 and r.stderr == expected, (p, r.stderr)
        else:  # nothing matches: one sentence, exit 1, from the fast path as from the full one
            assert r.returncode == 1 and r.stderr.startswith(f"ktui: no probe point matches {p!r}"), (p, r.stderr)
            assert r.stderr.count("\n") == 1
        assert r.stdout == full[p], p
    r = ktui("--kind", "tracepoint", "*sched_switch")
    assert r.stdout == "tracepoint:sched:sched_switch\n"
    assert ktui("--limit", "3", "tracepoint:*").stdout.splitlines() == full["tracepoint:*"].splitlines()[:3]


@pytest.mark.skipif(not KERNEL, reason="needs root and kernel BTF")
def test_list_imports_neither_numpy_nor_pyelftools():
    code = ("import sys; from ktui.cli import main; main(['list', 'tracepoint:sched:*']); "
            "main(['list', 'uprobe:/bin/bash:*read*']); print([m for m in ('numpy', 'elftools') if m in sys.modules])")
    ktui("tracepoint:sched:*")  # warm
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "[]"


@pytest.mark.skipif(not KERNEL, reason="needs root and kernel BTF")
def test_each_kind_is_listed_as_itself():
    r = ktui("kretprobe:do_sys_openat2")
    assert r.returncode == 0 and r.stdout == "kretprobe:do_sys_openat2\n"
    assert ktui("kr:do_sys_openat2").stdout == "kretprobe:do_sys_openat2\n"
    r = ktui("-v", "kretprobe:kernel_clone")
    assert r.stdout.splitlines()[0] == "kretprobe:kernel_clone" and "    pid_t retval" in r.stdout
    for head in ("fentry", "kfunc"):
        r = ktui(f"{head}:vfs_rea*")
        assert r.returncode == 0
        assert "fentry:vfs_read" in r.stdout.splitlines()
        assert all(line.startswith("fentry:") for line in r.stdout.splitlines())
    from ktui.doctor.bootcache import fentry_check

    works, why = fentry_check()
    if works is False:  # this kernel refuses fentry: said once, on stderr, stdout stays names
        assert r.stderr.count("\n") == 1 and "fentry" in r.stderr and why in r.stderr
    assert ktui("fexit:vfs_read").stdout == "fexit:vfs_read\n"
    data = [json.loads(line) for line in ktui("--json", "kretprobe:kernel_clone").stdout.splitlines()]
    assert data[0]["name"] == "kretprobe:kernel_clone" and data[0]["kind"] == "kretprobe"


@pytest.mark.skipif(not KERNEL, reason="needs root and kernel BTF")
@pytest.mark.parametrize("pattern", ["foo:*", "bogus:x*", "kprobes:vfs_read"])
def test_an_unknown_kind_is_one_sentence(pattern):
    r = ktui(pattern)
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Unknown probe kind" in r.stderr


@pytest.mark.skipif(not KERNEL, reason="needs root and kernel BTF")
def test_a_void_function_has_no_retval():
    r = ktui("-v", "kprobe:kfree")
    assert r.returncode == 0 and r.stdout.splitlines()[1].startswith("    const void * ")  # kfree(const void *)
    assert "retval" not in r.stdout
    assert "    pid_t retval" in ktui("-v", "kprobe:kernel_clone").stdout  # a value is still shown


@pytest.mark.skipif(not KERNEL, reason="needs root and kernel BTF")
@pytest.mark.parametrize("launcher", [False, True])
def test_no_match_is_a_sentence_with_the_closest_names_and_exit_1(launcher):
    """Through the fast launcher (python -S -m ktui.launch, as .venv/bin/ktui runs it) and the full command."""
    def run(*args):
        cmd = [sys.executable, "-S", "-c", "import sys; sys.path[:0] = sys.argv[1:2]; from ktui.launch import main; "
               "sys.exit(main(sys.argv[2:], site_deferred=True))", str(ROOT), "list", *args] if launcher else \
            [sys.executable, "-m", "ktui", "list", *args]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)

    r = run("tracepoint:sched:sched_swich")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == ("ktui: no probe point matches 'tracepoint:sched:sched_swich'; "
                        "did you mean tracepoint:sched:sched_switch?\n")
    r = run("kretprobe:do_sys_opnat2")  # suggested as the kind asked for
    assert r.returncode == 1 and "did you mean kretprobe:do_sys_openat2?" in r.stderr
    r = run("tracepoint:sched:sched_sw*")
    assert r.returncode == 0 and "tracepoint:sched:sched_switch" in r.stdout.splitlines() and r.stderr == ""


@pytest.mark.skipif(not KERNEL, reason="needs root and kernel BTF")
def test_kprobe_names_are_listed_with_a_note_where_kprobes_cannot_attach():
    from ktui.sysfacts import kprobes_available

    r = ktui("kretprobe:do_sys_openat*")
    assert r.returncode == 0 and "kretprobe:do_sys_openat2" in r.stdout.splitlines()
    noted = "this kernel cannot attach these: it has no kprobes" in r.stderr
    assert noted != kprobes_available()  # the note exactly when this kernel has no kprobes
    r = ktui("tracepoint:sched:sched_switch")
    assert "cannot attach" not in r.stderr


def test_profile_and_unknown_kinds_are_one_sentence():
    r = ktui("profile:*")
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1
    assert "take a rate (profile:hz:99, interval:s:1), not a name to list" in r.stderr
    r = ktui("bogus:x")
    assert r.returncode == 2 and "Unknown probe kind 'bogus'" in r.stderr and "fentry (kfunc)" in r.stderr
