"""ktui runs as root: a cache another user can plant must never be read (issue 11, item 1).

The end-to-end tests create a real second user (useradd), let that user plant a malicious cache
where their environment points ($HOME kept by `su` without `-`, $XDG_CACHE_HOME, $KTUI_CACHE_DIR),
run the real `ktui` as root with that environment, and remove the user again (userdel).
"""

from __future__ import annotations

import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from ktui import headers, paths
from ktui.catalog import Catalog

ROOT = Path(__file__).resolve().parents[1]
KTUI = [sys.executable, "-m", "ktui"]
AS_ROOT = os.geteuid() == 0 and shutil.which("useradd") and shutil.which("runuser")


class _Touch:
    """Unpickling this runs `touch MARKER`: what a planted pickle would make root do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _tracepoints(group: str) -> list[str]:
    for tfs in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        p = Path(tfs) / "available_events"
        if p.exists():
            return sorted("tracepoint:" + line.strip() for line in p.read_text().splitlines()
                          if line.startswith(group + ":"))
    pytest.skip("no tracefs")


@pytest.fixture
def intruder():
    """A real unprivileged user with a home directory, removed afterwards."""
    if not AS_ROOT:
        pytest.skip("needs root, useradd and runuser")
    name = "ktuisec" + uuid.uuid4().hex[:6]
    base = tempfile.mkdtemp(prefix="ktui-sec-", dir="/tmp")
    os.chmod(base, 0o755)
    home = Path(base) / name
    subprocess.run(["useradd", "-m", "-d", str(home), "-s", "/bin/sh", name], check=True, capture_output=True)
    try:
        yield name, home
    finally:
        subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _plant(user: str, files: dict[Path, bytes], links: dict[Path, str] | None = None) -> None:
    """Write files (and links) as ``user``: runuser, so they are that user's, with the user's umask."""
    staging = tempfile.mkdtemp(prefix="ktui-stage-", dir="/tmp")
    os.chmod(staging, 0o755)
    script = ["set -e"]
    for i, (dest, data) in enumerate(files.items()):
        src = Path(staging) / f"f{i}"
        src.write_bytes(data)
        os.chmod(src, 0o644)
        script.append(f"mkdir -p '{dest.parent}' && cp '{src}' '{dest}'")
    for dest, target in (links or {}).items():
        script.append(f"mkdir -p '{dest.parent}' && ln -sfn '{target}' '{dest}'")
    try:
        subprocess.run(["runuser", "-u", user, "--", "sh", "-c", "\n".join(script)], check=True,
                       capture_output=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _planted_index(extra_name: str) -> bytes:
    """An SQLite index with the right key for this kernel and one name that does not exist."""
    from ktui.catalog.cache import _key_text, catalog_key
    from ktui.catalog.cache import CACHE_FORMAT

    key = catalog_key(CACHE_FORMAT)
    fd, tmp = tempfile.mkstemp(suffix=".sqlite")
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp)
        conn.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, v) WITHOUT ROWID")
        names = "\n".join(sorted([*_tracepoints("sched"), extra_name]))
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [("key", _key_text(key)), ("names:tracepoint", names)])
        conn.commit()
        conn.close()
        return Path(tmp).read_bytes()
    finally:
        os.unlink(tmp)


@pytest.mark.parametrize("how", ["HOME", "XDG_CACHE_HOME", "KTUI_CACHE_DIR"])
def test_root_never_reads_a_cache_planted_by_another_user(intruder, tmp_path, how):
    user, home = intruder
    marker = tmp_path / "pwned"
    planted_dir = {"HOME": home / ".cache" / "ktui", "XDG_CACHE_HOME": home / "xdg" / "ktui",
                   "KTUI_CACHE_DIR": home / "mycache"}[how]
    bogus = "tracepoint:sched:planted_by_intruder"
    evil_pickle = pickle.dumps({"key": None, "x": _Touch(str(marker))})
    files = {planted_dir / name: evil_pickle for name in ("catalog-kernel.pickle", "catalog.pickle")}
    files[planted_dir / "catalog-kernel.sqlite"] = _planted_index(bogus)
    _plant(user, files)
    env = {k: v for k, v in os.environ.items() if k not in ("KTUI_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update({"HOME": str(home), "USER": "root"})  # what `su` without `-` leaves behind
    if how == "XDG_CACHE_HOME":
        env["XDG_CACHE_HOME"] = str(home / "xdg")
    elif how == "KTUI_CACHE_DIR":
        env["KTUI_CACHE_DIR"] = str(planted_dir)
    for args in (["list", "tracepoint:sched:*"], ["list", "tracepoint:sched:*"], ["list", "--json", "tracepoint:sched:sched_switch"]):
        r = subprocess.run([*KTUI, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
        assert r.returncode == 0, r.stderr
        assert not marker.exists(), "a planted pickle ran as root"
        assert bogus not in r.stdout
    r = subprocess.run([*KTUI, "list", "tracepoint:sched:*"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r.stdout.splitlines() == _tracepoints("sched")
    # and nothing of root's was written where the intruder can reach it
    for p in planted_dir.rglob("*"):
        assert p.lstat().st_uid != 0, f"root wrote {p} into another user's directory"


def test_root_never_compiles_against_a_header_tree_planted_by_another_user(intruder, tmp_path, monkeypatch):
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)  # an earlier test's ensure_headers() set it
    pairs = headers._generic_pairs()
    if not pairs or headers.find_headers() is None or headers.find_headers().kind != "generic":
        pytest.skip("this machine does not use the generic header fallback")
    _, common, arch = pairs[0]
    user, home = intruder
    tree = home / ".cache" / "ktui" / "headers" / arch.name
    # a complete-looking tree whose sched.h is the intruder's
    files = {tree / ".ktui-complete": f"{common}\n{arch}\n".encode(),
             tree / "include" / "linux" / "sched.h": b"#error PLANTED_BY_INTRUDER\n"}
    _plant(user, files)
    env = {k: v for k, v in os.environ.items() if k not in ("KTUI_CACHE_DIR", "XDG_CACHE_HOME", "BCC_KERNEL_SOURCE")}
    env["HOME"] = str(home)
    code = "from ktui import headers; print(headers.ensure_headers().path)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    used = Path(r.stdout.strip())
    assert not used.is_relative_to(home) and used.stat().st_uid == 0
    r = subprocess.run([*KTUI, "compile", "--check", "tracepoint:sched:sched_switch"], capture_output=True,
                       text=True, env=env, cwd=ROOT, timeout=300)
    assert "PLANTED_BY_INTRUDER" not in r.stdout + r.stderr
    assert r.returncode == 0, r.stderr


# ---- the checks themselves, in-process, on a private cache directory ---------------------------

@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("KTUI_CACHE_DIR", str(d))
    return d


def test_cache_dir_is_private(cache):
    d = paths.cache_dir()
    st = d.stat()
    assert st.st_uid == os.geteuid() and (st.st_mode & 0o777) == 0o700


def test_a_group_writable_cache_dir_is_not_used(cache):
    cache.mkdir(mode=0o700)
    os.chmod(cache, 0o770)
    assert paths.cache_dir() != cache


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a file of another owner")
@pytest.mark.parametrize("damage", ["chown", "chmod", "symlink", "fifo"])
def test_a_cached_index_that_is_not_ours_is_rebuilt(cache, damage, tmp_path):
    Catalog.load()
    index = paths.cache_dir() / "catalog-kernel.sqlite"
    assert Catalog.load().from_cache
    if damage == "chown":
        os.chown(index, 65534, 65534)
    elif damage == "chmod":
        os.chmod(index, 0o666)
    elif damage == "symlink":
        moved = tmp_path / "elsewhere.sqlite"
        os.replace(index, moved)
        os.symlink(moved, index)
    else:
        index.unlink()
        os.mkfifo(index, 0o600)  # must not hang either
        cat = Catalog.load()
        assert not cat.from_cache
        return
    assert paths.open_cached(index) is None
    cat = Catalog.load()
    assert not cat.from_cache and cat.lookup("tracepoint:sched:sched_switch") is not None


def test_an_index_of_another_kernel_is_never_used(cache):
    """Swap identities: the index says another kernel (and holds a name this one lacks)."""
    from ktui.catalog import cache as cc

    Catalog.load()
    index = paths.cache_dir() / "catalog-kernel.sqlite"
    conn = sqlite3.connect(index)
    key = cc.catalog_key(cc.CACHE_FORMAT)
    assert conn.execute("SELECT v FROM meta WHERE k='key'").fetchone()[0] == cc._key_text(key)
    key["release"] = key["release"] + "-another"
    names = conn.execute("SELECT v FROM meta WHERE k='names:tracepoint'").fetchone()[0]
    conn.execute("UPDATE meta SET v=? WHERE k='key'", (cc._key_text(key),))
    conn.execute("UPDATE meta SET v=? WHERE k='names:tracepoint'", (names + "\ntracepoint:zz:other_kernel",))
    conn.commit()
    conn.close()
    cat = Catalog.load()
    assert not cat.from_cache and cat.lookup("tracepoint:zz:other_kernel") is None
    r = subprocess.run([*KTUI, "list", "tracepoint:zz*"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 1 and r.stdout == "" and "no probe point matches 'tracepoint:zz*'" in r.stderr
    assert Catalog.load().from_cache  # the rebuilt index is this kernel's


def test_a_header_tree_with_a_foreign_link_is_rebuilt(cache):
    pairs = headers._generic_pairs()
    if not pairs:
        pytest.skip("no distribution kernel headers installed")
    _, common, arch = pairs[0]
    tree = headers._merged_tree(common, arch)
    assert headers._tree_is_ours(tree, common, arch)
    sched = tree / "include" / "linux" / "sched.h"
    sched.unlink()
    sched.symlink_to("/etc/hostname")
    assert not headers._tree_is_ours(tree, common, arch)
    rebuilt = headers._merged_tree(common, arch)
    assert os.readlink(rebuilt / "include" / "linux" / "sched.h").startswith(str(common) + "/")
    (rebuilt / "include" / "extra.h").write_text("#error planted\n")  # a regular file we did not make
    assert not headers._tree_is_ours(rebuilt, common, arch)
