"""Security regression: outputs never write through links, and are their user's only.

As root with a second, unprivileged user the test creates: that user plants a symbolic link
named like root's output in a directory the user owns, pointing at a file the test made
(the victim). `ktui export --force` (and `import --force`) must leave the victim unchanged,
content and mode, and put a regular 0600 file under the name.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from helpers.security import KTUI, run_as, unprivileged_user
from ktui.errors import KtuiError
from ktui.safe_output import output_file

FIX = Path(__file__).parent / "fixtures" / "ftrace"
VICTIM_TEXT = "root-owned content the export must not touch\n"


@pytest.fixture
def shared_dir():
    """A directory the unprivileged user owns (their home, a project), reachable by that user."""
    base = Path(tempfile.mkdtemp(prefix="ktui-sec-"))
    os.chmod(base, 0o711)
    try:
        with unprivileged_user() as user:
            home = base / "home"
            home.mkdir()
            os.chown(home, user.pw_uid, user.pw_gid)
            victim = base / "victim"
            victim.write_text(VICTIM_TEXT)
            os.chmod(victim, 0o640)
            yield user, home, victim
    finally:
        shutil.rmtree(base, True)


def _plant(user, link: Path, target: Path) -> None:
    proc = run_as(user, ["/bin/ln", "-s", str(target), str(link)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.wait(10)
    assert proc.returncode == 0 and link.is_symlink() and link.lstat().st_uid == user.pw_uid


def _recording(tmp_path: Path) -> Path:
    rec = tmp_path / "a.rec"
    done = subprocess.run([str(KTUI), "import", str(FIX / "kprobes_modern.txt"), "-o", str(rec)],
                          capture_output=True, text=True)
    assert done.returncode == 4 and rec.exists(), done.stderr  # the fixture holds lines that are not events
    return rec


def _victim_unchanged(victim: Path) -> None:
    assert victim.read_text() == VICTIM_TEXT
    st = victim.stat()
    assert st.st_mode & 0o777 == 0o640 and st.st_uid == 0


@pytest.mark.parametrize("fmt", ["jsonl", "perfetto"])
def test_export_force_replaces_a_planted_link_and_never_writes_through_it(shared_dir, tmp_path, fmt):
    user, home, victim = shared_dir
    rec = _recording(tmp_path)
    out = home / "exp.jsonl"
    _plant(user, out, victim)
    # Without --force the name is taken: refused, nothing written anywhere.
    done = subprocess.run([str(KTUI), "export", str(rec), "-f", fmt, "-o", "exp.jsonl"], cwd=home,
                          capture_output=True, text=True)
    assert done.returncode != 0 and "exists" in done.stderr
    assert out.is_symlink()
    _victim_unchanged(victim)
    done = subprocess.run([str(KTUI), "export", str(rec), "-f", fmt, "-o", "exp.jsonl", "--force"], cwd=home,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    _victim_unchanged(victim)
    st = out.lstat()
    assert not out.is_symlink() and st.st_mode & 0o777 == 0o600 and st.st_uid == 0
    text = out.read_text()
    assert ("do_sys_openat2" in text) and VICTIM_TEXT not in text
    assert sorted(p.name for p in home.iterdir()) == ["exp.jsonl"]  # no temporary file left


def test_export_without_force_refuses_a_dangling_link(shared_dir, tmp_path):
    user, home, victim = shared_dir
    rec = _recording(tmp_path)
    target = victim.with_name("not-yet")
    _plant(user, home / "exp.jsonl", target)
    done = subprocess.run([str(KTUI), "export", str(rec), "-f", "jsonl", "-o", str(home / "exp.jsonl")],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "exists" in done.stderr
    assert not target.exists()  # O_CREAT through a dangling link would have made it


def test_import_force_replaces_a_planted_link_and_never_writes_through_it(shared_dir):
    user, home, victim = shared_dir
    out = home / "t.rec"
    _plant(user, out, victim)
    done = subprocess.run([str(KTUI), "import", str(FIX / "kprobes_modern.txt"), "-o", str(out), "--force"],
                          capture_output=True, text=True)
    assert done.returncode == 4, done.stderr  # imported; the fixture's non-event lines give exit status 4
    _victim_unchanged(victim)
    assert not out.is_symlink() and out.lstat().st_mode & 0o777 == 0o600


def test_export_to_a_directory_is_one_sentence(tmp_path):
    rec = _recording(tmp_path)
    (tmp_path / "d").mkdir()
    done = subprocess.run([str(KTUI), "export", str(rec), "-f", "jsonl", "-o", str(tmp_path / "d"), "--force"],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "is a directory" in done.stderr and "Traceback" not in done.stderr
    assert list((tmp_path / "d").iterdir()) == []


def test_output_file_leaves_the_old_file_whole_when_writing_fails(tmp_path):
    path = tmp_path / "out"
    path.write_text("old\n")
    with pytest.raises(RuntimeError):
        with output_file(path, replace=True) as f:
            f.write("half")
            raise RuntimeError("the exporter failed")
    assert path.read_text() == "old\n" and sorted(os.listdir(tmp_path)) == ["out"]

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, _):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(KtuiError, match="No space left on device; nothing was written"):
        with output_file(path, replace=True) as f:
            Full(f).write("x")
    assert path.read_text() == "old\n" and sorted(os.listdir(tmp_path)) == ["out"]


def test_output_file_is_owner_only_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        with output_file(tmp_path / "new", replace=False) as f:
            f.write("x")
    finally:
        os.umask(old)
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o600
    with pytest.raises(KtuiError, match="exists"):
        with output_file(tmp_path / "new", replace=False) as f:
            f.write("y")
    assert (tmp_path / "new").read_text() == "x"
