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
    data = json.loads(capsys.readouterr().out)
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
