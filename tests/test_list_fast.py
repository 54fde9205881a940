"""`ktui list PATTERN` on its fast path (issue 17): what it imports, that it answers what the full
command answers, and that its indexes are never trusted for another kernel or another binary."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
KERNEL = os.geteuid() == 0 and os.path.exists("/sys/kernel/btf/vmlinux")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KTUI_CACHE_DIR", str(tmp_path / "cache"))


def ktui(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ktui", "list", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_plain_args_are_what_argparse_gives():
    """The fast path's arguments for `ktui list PATTERN` are the parser's, option for option."""
    from ktui.cli import build_parser
    from ktui.commands.list import PlainArgs

    parsed = vars(build_parser(["list", "x"]).parse_args(["list", "tracepoint:sched:*"]))
    parsed.pop("run")
    assert parsed.pop("command") == "list"
    for global_option in ("session", "demo", "trace_self"):
        parsed.pop(global_option)
    assert vars(PlainArgs("tracepoint:sched:*")) == parsed


GLOB_ALPHABET = st.sampled_from(["a", "b", "ab", "*", ":", "_", "ba"])


@settings(max_examples=300, deadline=None)
@given(st.lists(GLOB_ALPHABET, max_size=6).map("".join), st.lists(st.sampled_from("ab:_"), max_size=8).map("".join))
def test_star_globs_match_as_the_regex_does(glob, name):
    from ktui.catalog.search import compile_glob, star_chunks, star_match

    chunks = star_chunks(glob)
    assert chunks is not None
    assert star_match(name, chunks) == bool(compile_glob(glob).fullmatch(name)), (glob, name)


def test_other_glob_syntax_is_left_to_the_regex():
    from ktui.catalog.search import star_chunks

    for glob in ("a?b", "[ab]*", "{a,b}", "a\\*", "a\nb"):
        assert star_chunks(glob) is None


@pytest.mark.skipif(not KERNEL, reason="needs root and kernel BTF")
def test_the_fast_path_imports_nothing_it_does_not_need(tmp_path):
    """What the launcher's `ktui list PATTERN` loads: no site machinery, argparse, pathlib, json,
    tempfile, and no third-party package (each costs start-up time bpftrace -l does not pay)."""
    code = ("import sys, os; from ktui.launch import main; sys.stdout = open(os.devnull, 'w');"
            "codes = [main(['list', p], site_deferred=True) for p in sys.argv[1:]];"
            "print(codes, sorted(m for m in ('site', 'argparse', 'pathlib', 'json', 'tempfile', 're', 'numpy',"
            " 'textual', 'elftools', 'rapidfuzz', 'bcc', 'ktui.cli', 'ktui.catalog.core') if m in sys.modules),"
            " file=sys.stderr)")
    patterns = ["tracepoint:sched:*", "tracepoint:*", "uprobe:/bin/bash:*read*"]
    for _ in ("cold", "warm"):
        r = subprocess.run([sys.executable, "-S", "-c", code, *patterns], capture_output=True, text=True,
                           cwd=ROOT, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert r.returncode == 0, r.stderr
        assert r.stderr.strip() == "[0, 0, 0] []"


@pytest.mark.skipif(not KERNEL, reason="needs root and kernel BTF")
def test_the_launcher_answers_as_the_full_command():
    """The launcher scripts/setup.sh writes (python -S) prints what the full catalog prints, and
    every other command still finds the venv's packages (site.main() is run for them)."""
    launcher = Path(sys.executable).with_name("ktui")
    if not launcher.read_text().startswith(f"#!{sys.executable} -S"):
        pytest.skip("this venv's ktui is pip's console script (no launcher from scripts/setup.sh)")
    for pattern in ("tracepoint:sched:*", "uprobe:/bin/bash:*read*"):
        fast = subprocess.run([str(launcher), "list", pattern], capture_output=True, text=True, timeout=120)
        full = subprocess.run([str(launcher), "list", "--no-cache", pattern], capture_output=True, text=True,
                              timeout=300)
        assert fast.returncode == full.returncode == 0 and fast.stderr == ""
        assert fast.stdout == full.stdout and fast.stdout.count("\n") > 5
    r = subprocess.run([str(launcher), "list", "-v", "tracepoint:sched:sched_switch"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and "    pid_t next_pid" in r.stdout.splitlines()
    bad = subprocess.run([str(launcher), "list", "zz:x"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("ktui: Unknown probe kind 'zz'")
    assert "Traceback" not in bad.stderr


# ---- the per-binary index ------------------------------------------------------------------------

def _binary_row(path: Path) -> tuple[str, str] | None:
    from ktui.catalog.cache import binary_index_file

    with sqlite3.connect(binary_index_file()) as conn:
        return conn.execute("SELECT ident, names FROM binaries WHERE path = ?", (str(path),)).fetchone()


def _plant(path: Path, extra: str) -> None:
    """Add a name to the stored row, keeping its identity: only a listing that reads the index shows it."""
    from ktui.catalog.cache import binary_index_file

    with sqlite3.connect(binary_index_file()) as conn:
        (names,) = conn.execute("SELECT names FROM binaries WHERE path = ?", (str(path),)).fetchone()
        conn.execute("UPDATE binaries SET names = ? WHERE path = ?",
                     ("\n".join(sorted([*names.split("\n"), extra])), str(path)))


def _names(path: Path) -> list[str]:
    r = ktui(f"uprobe:{path}:*")
    assert r.returncode == 0, r.stderr
    return [line.rsplit(":", 1)[1] for line in r.stdout.splitlines()]


def test_a_binary_is_indexed_once_and_never_trusted_for_another(tmp_path):
    """Swap the binary at one path (a rename, a rewrite in place, a stripped copy with the same
    build id): each time the listing is the new binary's, never the index of the old one."""
    from tests.helpers import build_c

    one = build_c("index_one", "int only_in_one(int x) { return x + 1; }\nint main(void) { return only_in_one(0); }\n")
    two = build_c("index_two", "int only_in_two(int x) { return x * 2; }\nint main(void) { return only_in_two(1); }\n")
    prog = tmp_path / "prog"
    shutil.copy(one, prog)

    first = _names(prog)
    assert "only_in_one" in first and "only_in_two" not in first
    row = _binary_row(prog)
    assert row is not None and row[0].startswith("build-id ") and "only_in_one" in row[1].split("\n")
    _plant(prog, "planted_in_index")
    assert "planted_in_index" in _names(prog)  # the warm listing reads the index ...

    shutil.copy(two, tmp_path / "next")
    os.replace(tmp_path / "next", prog)  # ... until the path holds another binary
    second = _names(prog)
    assert "only_in_two" in second and "only_in_one" not in second and "planted_in_index" not in second

    _plant(prog, "planted_again")
    prog.write_bytes(prog.read_bytes())  # rewritten in place: same inode, size and build id
    assert "planted_again" not in _names(prog)

    unstripped = tmp_path / "unstripped"
    subprocess.run(["gcc", "-O0", "-g", "-x", "c", "-o", str(unstripped), "-"], check=True,
                   input="static int hidden_local(int x) { return x - 1; }\n"
                         "int main(int c, char **v) { return hidden_local(c); }\n", text=True)
    shutil.copy(unstripped, prog)
    assert "hidden_local" in _names(prog)  # a local function: only in .symtab
    subprocess.run(["strip", "--strip-all", str(prog)], check=True)
    from ktui.catalog.elf_names import read_elf_symbols

    assert read_elf_symbols(str(prog)).build_id == read_elf_symbols(str(unstripped)).build_id
    stripped = ktui(f"uprobe:{prog}:*")  # same build id, other symbols: not the index's
    assert "hidden_local" not in stripped.stdout
    assert stripped.returncode == 4 and "stripped" in stripped.stderr  # it defines no function now


def test_a_binary_index_row_of_another_path_is_not_used(tmp_path):
    """Rows are per path and per identity: a planted row for another identity is ignored."""
    from ktui.catalog.cache import binary_index_file, write_binary_names
    from ktui.catalog.elf_names import binary_identity

    prog = tmp_path / "bash"
    shutil.copy("/bin/bash", prog)
    real = _names(prog)
    write_binary_names(str(prog), "build-id - file 1:2:3:4:5 debug -", "not_this_binary")
    assert os.stat(binary_index_file()).st_mode & 0o777 == 0o600
    assert _names(prog) == real
    assert _binary_row(prog) == (binary_identity(str(prog)), "\n".join(sorted(set(real))))


def test_a_damaged_binary_index_is_replaced(tmp_path):
    from ktui.catalog.cache import binary_index_file

    prog = tmp_path / "bash"
    shutil.copy("/bin/bash", prog)
    real = _names(prog)
    garbage = os.open(binary_index_file() + ".new", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(garbage, b"SQLite format 3\0" + os.urandom(4096))
    os.close(garbage)
    os.replace(binary_index_file() + ".new", binary_index_file())
    assert _names(prog) == real  # read from the binary, the damaged file replaced by a new index
    row = _binary_row(prog)
    assert row is not None and row[1] == "\n".join(sorted(set(real)))


# ---- the kernel index: another kernel, another module set ------------------------------------------

@pytest.mark.skipif(not KERNEL, reason="needs root and tracefs")
def test_the_names_index_of_another_module_set_is_not_used(monkeypatch):
    """Loading or unloading a module changes the key: the names kept before are not listed."""
    from ktui.catalog import cache, quicklist

    cold = quicklist.kernel_names("tracepoint:sched:*", None)
    assert cold and "tracepoint:sched:sched_switch" in cold
    key = cache.catalog_key(cache.CACHE_FORMAT)
    conn = sqlite3.connect(cache.cache_file())
    (names,) = conn.execute("SELECT v FROM meta WHERE k='names:tracepoint'").fetchone()
    planted = "\n".join(sorted([*names.split("\n"), "tracepoint:sched:zz_planted"]))  # the index is sorted
    conn.execute("UPDATE meta SET v=? WHERE k='names:tracepoint'", (planted,))
    conn.commit()
    conn.close()
    assert "tracepoint:sched:zz_planted" in quicklist.kernel_names("tracepoint:sched:*", None)  # read from the index

    real_read = cache._read

    def one_more_module(path: str) -> str:
        text = real_read(path)
        return text + "zz_new_module 16384 0 - Live 0x0000000000000000\n" if path == "/proc/modules" else text

    monkeypatch.setattr(cache, "_read", one_more_module)
    assert cache.catalog_key(cache.CACHE_FORMAT) != key
    after = quicklist.kernel_names("tracepoint:sched:*", None)
    assert "tracepoint:sched:zz_planted" not in after and "tracepoint:sched:sched_switch" in after
