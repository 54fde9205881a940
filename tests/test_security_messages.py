"""Errors never echo what a file holds, and a missing privilege is one plain sentence.

`ktui import /etc/shadow -o x` as root must not print a line of the file (a password hash)
in its error; it says which line and what was expected. As an unprivileged user the test
creates, `ktui record` and `ktui compile --check` say they need root (one sentence, non-zero
exit), not a raw BCC map error; `ktui doctor` still works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from helpers.security import KTUI, unprivileged_user

SECRET = "s3cr3tHashValue"
SHADOW_LIKE = (f"root:$y$j9T$salt{SECRET}$abcdefghijklmnop:19000:0:99999:7:::\n"
               f"daemon:*:19000:0:99999:7:::\n"
               f"  sshd-42 [000] 1.000000: sys_getppid({SECRET})\n")


def test_import_of_a_secret_file_names_lines_never_their_content(tmp_path):
    src = tmp_path / "shadow"
    src.write_text(SHADOW_LIKE)
    os.chmod(src, 0o600)
    done = subprocess.run([str(KTUI), "import", str(src), "-o", str(tmp_path / "x.rec")], capture_output=True,
                          text=True)
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert SECRET not in said and "root:" not in said and "daemon" not in said
    assert f"{src}:1:" in said and "expected comm-pid [cpu] timestamp: event" in said
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in said
    assert not (tmp_path / "x.rec").exists()


def test_import_problems_are_reported_by_line_number_only(tmp_path):
    src = tmp_path / "mixed.txt"
    good = "            bash-1234  [001] .....  100.000001: sys_openat(dfd: 0x3, filename: 0x1, flags: 0x0, mode: 0x0)\n"
    src.write_text(good + f"{SECRET} line two\n" + f"            bash-1234  [001] .....  100.000002: "
                   f"sys_openat(dfd{SECRET})\n" + good)
    done = subprocess.run([str(KTUI), "import", str(src), "-o", str(tmp_path / "m.rec")], capture_output=True,
                          text=True)
    assert done.returncode == 4, done.stderr  # imported, with lines that were not: damage is an exit status
    assert SECRET not in done.stdout + done.stderr
    assert f"{src}:2: not an event line" in done.stderr
    assert f"{src}:3:" in done.stderr


@pytest.fixture(scope="module")
def nobody():
    """An unprivileged user with a private home (ktui's cache and data go there)."""
    base = Path(tempfile.mkdtemp(prefix="ktui-np-"))
    os.chmod(base, 0o711)
    try:
        with unprivileged_user() as user:
            home = base / "home"
            home.mkdir()
            os.chown(home, user.pw_uid, user.pw_gid)
            yield user, home
    finally:
        shutil.rmtree(base, True)


def _as(user, home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(KTUI), *args], user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd=home,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(home), "LC_ALL": "C.UTF-8"},
                          capture_output=True, text=True, timeout=timeout)


def test_record_as_a_user_says_it_needs_root_in_one_sentence(nobody):
    user, home = nobody
    done = _as(user, home, "record", "tracepoint:syscalls:sys_enter_getppid", "-o", "x.rec", "--duration", "1")
    assert done.returncode == 3, done.stderr
    assert done.stderr.strip().splitlines() == [
        "ktui: ktui record needs root (loading BPF programs needs CAP_BPF and CAP_PERFMON); run it with sudo."]
    assert "bpf map" not in done.stderr and not (home / "x.rec").exists()


def test_compile_check_as_a_user_says_it_needs_root_and_doctor_still_works(nobody):
    user, home = nobody
    done = _as(user, home, "compile", "--check", "tracepoint:syscalls:sys_enter_getppid")
    assert done.returncode == 3 and "needs root" in done.stderr and "bpf map" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = _as(user, home, "doctor", "--no-compile")
    assert done.returncode == 0, done.stderr
    assert "not root" in done.stdout and "Traceback" not in done.stderr
