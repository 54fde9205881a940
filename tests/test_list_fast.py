"""`ktui list PATTERN` on its fast path (issue 17): what it imports, that it answers what the full
command answers, and that its indexes are never trusted for another kernel or another binary."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
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
    # a program's names: not even SQLite (its per-binary index is a plain file), cold and warm
    for _ in ("cold", "warm"):
        r = subprocess.run([sys.executable, "-S", "-c", code.replace("'bcc',", "'bcc', 'sqlite3', 'mmap',"),
                            "uprobe:/bin/bash:*read*"], capture_output=True, text=True, cwd=ROOT, timeout=120,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert r.returncode == 0, r.stderr
        assert r.stderr.strip() == "[0] []"


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
    """(identity, names) the per-binary index holds for ``path``."""
    from ktui.catalog.index_binaries import read_entry

    return read_entry(str(path))


def _plant(path: Path, extra: str) -> None:
    """Add a name to the stored entry, keeping its identity: only a listing that reads the index shows it."""
    from ktui.catalog.index_binaries import write_names

    row = _binary_row(path)
    assert row is not None
    write_names(str(path), row[0], "\n".join(sorted([*row[1].split("\n"), extra])))


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


def test_a_binary_index_entry_of_another_identity_or_path_is_not_used(tmp_path):
    """Entries are per path and per identity: one planted for another identity, or another path's
    entry in this path's file (a hash collision), is ignored and replaced."""
    from ktui.catalog.index_binaries import index_file, write_names
    from ktui.catalog.elf_names import binary_identity

    prog = tmp_path / "bash"
    shutil.copy("/bin/bash", prog)
    real = _names(prog)
    write_names(str(prog), "build-id - file 1:2:3:4:5 debug -", "not_this_binary")
    assert os.stat(index_file(str(prog))).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(index_file(str(prog)))).st_mode & 0o777 == 0o700
    assert _names(prog) == real
    assert _binary_row(prog) == (binary_identity(str(prog)), "\n".join(sorted(set(real))))

    other = tmp_path / "other"
    write_names(str(other), binary_identity(str(prog)), "another_paths_name")
    os.replace(index_file(str(other)), index_file(str(prog)))  # as if both paths hashed alike
    assert _names(prog) == real
    assert _binary_row(prog) == (binary_identity(str(prog)), "\n".join(sorted(set(real))))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "longer", "not utf-8", "symlink", "group-writable"])
def test_a_damaged_or_foreign_binary_index_file_is_replaced(tmp_path, damage):
    from ktui.catalog.index_binaries import index_file

    prog = tmp_path / "bash"
    shutil.copy("/bin/bash", prog)
    real = _names(prog)
    file = Path(index_file(str(prog)))
    good = file.read_bytes()
    _plant(prog, "planted_in_index")
    planted = file.read_bytes()
    assert "planted_in_index" in _names(prog)  # read from the index while it is whole and ours
    if damage == "garbage":
        file.write_bytes(os.urandom(4096))
    elif damage == "truncated":
        file.write_bytes(planted[:-1])
    elif damage == "longer":
        file.write_bytes(planted + b"\nextra")
    elif damage == "not utf-8":
        file.write_bytes(planted[:-2] + b"\xff\xfe")
    elif damage == "symlink":
        elsewhere = tmp_path / "elsewhere"
        elsewhere.write_bytes(planted)
        file.unlink()
        file.symlink_to(elsewhere)
    else:
        os.chmod(file, 0o620)
    assert _names(prog) == real  # read from the binary, the file replaced by a new entry
    assert file.read_bytes() == good and not file.is_symlink()
    assert os.stat(file).st_mode & 0o777 == 0o600


def test_the_binary_index_keeps_a_bounded_number_of_files(tmp_path, monkeypatch):
    from ktui.catalog import index_binaries

    monkeypatch.setattr(index_binaries, "MAX_FILES", 3)
    for i in range(5):
        index_binaries.write_names(f"/nowhere/prog{i}", "id", f"name{i}")
        os.utime(index_binaries.index_file(f"/nowhere/prog{i}"), ns=(i * 10**9, i * 10**9))
        if i == 2:  # what a listing killed before its rename leaves, long ago and just now
            d = os.path.dirname(index_binaries.index_file("/x"))
            for name, age in ((".1-stale.tmp", 3600), (".2-fresh.tmp", 0)):
                Path(d, name).write_bytes(b"half")
                os.utime(Path(d, name), ns=((time.time_ns() - age * 10**9),) * 2)
    kept = [i for i in range(5) if index_binaries.read_entry(f"/nowhere/prog{i}") is not None]
    left = sorted(os.listdir(os.path.dirname(index_binaries.index_file("/x"))))
    assert [n for n in left if n.endswith(".tmp")] == [".2-fresh.tmp"]  # a running listing's is kept
    os.unlink(Path(os.path.dirname(index_binaries.index_file("/x")), ".2-fresh.tmp"))
    assert kept == [2, 3, 4]  # the two least recently written went
    assert len(os.listdir(os.path.dirname(index_binaries.index_file("/x")))) == 3


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


def _plant_tracepoint(name: str) -> None:
    """Add a tracepoint name to the index's sorted names row, whatever kernel the index says it is."""
    from ktui.catalog import cache

    conn = sqlite3.connect(cache.cache_file())
    (names,) = conn.execute("SELECT v FROM meta WHERE k='names:tracepoint'").fetchone()
    conn.execute("UPDATE meta SET v=? WHERE k='names:tracepoint'", ("\n".join(sorted([*names.split("\n"), name])),))
    conn.commit()
    conn.close()


@pytest.mark.skipif(not KERNEL, reason="needs root and tracefs")
@pytest.mark.parametrize("field", ["release", "version", "build id"])
def test_the_names_index_of_another_kernel_is_never_used(monkeypatch, field):
    """Swap identities both ways: the index written on another kernel (here: the same machine with
    another release, uname version or vmlinux build id - a rebuilt kernel) is not used on this one,
    by the fast path in this process nor by the real `ktui list`; and this kernel's is not used there."""
    from ktui.catalog import cache, quicklist

    real = cache.identity_fields()
    i = {"release": 0, "version": 1, "build id": 3}[field]
    other = tuple(v + "-other" if j == i else v for j, v in enumerate(real))
    sched = "tracepoint:sched:*"

    monkeypatch.setattr(cache, "identity_fields", lambda: other)
    assert "tracepoint:sched:sched_switch" in quicklist.kernel_names(sched, None)  # the other kernel's index
    _plant_tracepoint("tracepoint:sched:zz_other_kernel")
    assert "tracepoint:sched:zz_other_kernel" in quicklist.kernel_names(sched, None)  # ... read there

    monkeypatch.setattr(cache, "identity_fields", lambda: real)
    r = subprocess.run([str(Path(sys.executable).with_name("ktui")), "list", sched], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "tracepoint:sched:sched_switch\n" in r.stdout
    assert "zz_other_kernel" not in r.stdout  # this kernel never lists the other one's names
    assert "zz_other_kernel" not in "\n".join(quicklist.kernel_names(sched, None))
    _plant_tracepoint("tracepoint:sched:zz_this_kernel")
    assert "tracepoint:sched:zz_this_kernel" in quicklist.kernel_names(sched, None)  # now this kernel's index

    monkeypatch.setattr(cache, "identity_fields", lambda: other)
    back = quicklist.kernel_names(sched, None)
    assert "tracepoint:sched:sched_switch" in back
    assert not {"tracepoint:sched:zz_this_kernel", "tracepoint:sched:zz_other_kernel"} & set(back)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_a_program_rebuilt_at_the_same_path_is_read_again(tmp_path):
    """`make` again: the compiler writes a new binary at the same path; the listing is the new one's."""
    prog = tmp_path / "prog"

    def build(body: str) -> None:
        subprocess.run(["gcc", "-O0", "-x", "c", "-o", str(prog), "-"], check=True, text=True,
                       input=body + "int main(void) { return 0; }\n")

    build("int version_one(int x) { return x + 1; }\n")
    first = _names(prog)
    assert "version_one" in first
    _plant(prog, "planted_in_index")
    assert "planted_in_index" in _names(prog)  # the index is read while the binary is the same

    build("int version_two(int x) { return x + 2; }\n")  # same path, same size most likely
    second = _names(prog)
    assert "version_two" in second and "version_one" not in second and "planted_in_index" not in second
    row = _binary_row(prog)
    assert row is not None and "version_two" in row[1].split("\n")

    _plant(prog, "planted_again")
    build("int version_two(int x) { return x + 2; }\n")  # the same source again: same build id
    assert "planted_again" not in _names(prog)


UPROBE_EVENTS = "/sys/kernel/tracing/uprobe_events"


@pytest.mark.skipif(not KERNEL or not os.path.exists(UPROBE_EVENTS), reason="needs root and tracefs uprobe_events")
def test_a_new_dynamic_event_refreshes_the_names_index():
    """A real change of the kernel's probe set (this kernel loads no modules: no /proc/modules): a
    uprobe event added through tracefs is a new tracepoint; the next `ktui list` lists it (the index
    is rebuilt for the new set), and no longer once it is removed."""
    from ktui.catalog.elf_names import read_elf_symbols, vaddr_to_offset

    syms = read_elf_symbols("/bin/bash")
    offset = vaddr_to_offset(syms.segments, min(syms.functions["readline"]))
    assert offset is not None
    group = f"ktui_test_{os.getpid()}"
    launcher = Path(sys.executable).with_name("ktui")

    def listed() -> str:
        r = subprocess.run([str(launcher), "list", f"tracepoint:{group}:*"], capture_output=True, text=True,
                           timeout=120)
        # exit 0 with names, or 1 with the one sentence when nothing matches
        assert (r.returncode, r.stderr) in ((0, ""), (1, f"ktui: no probe point matches 'tracepoint:{group}:*'\n")), \
            r.stderr
        assert (r.returncode == 0) == bool(r.stdout)
        return r.stdout

    def command(text: str) -> None:
        # O_APPEND without O_TRUNC: other users' events stay (open(..., "a") seeks, which tracefs refuses)
        fd = os.open(UPROBE_EVENTS, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    assert listed() == ""  # the index now holds this kernel's tracepoints, without the group
    command(f"p:{group}/readline_probe /bin/bash:0x{offset:x}\n")
    try:
        assert listed() == f"tracepoint:{group}:readline_probe\n"
    finally:
        command(f"-:{group}/readline_probe\n")
    assert listed() == ""


def test_an_arguments_json_is_its_fields_without_the_empty_ones():
    """Arg.to_dict reads its fields directly (for speed): the same keys, order and values as the
    dataclass's own asdict, whatever fields Arg has."""
    from dataclasses import asdict, fields

    from ktui.catalog.entry import Arg

    args = [Arg("x", "int"), Arg("p", "const char *", offset=8, size=8, signed=False),
            Arg("n", "long", size=8, signed=True), Arg("", "void *", offset=0)]
    for a in args:
        want = {k: v for k, v in asdict(a).items() if v is not None}
        assert list(a.to_dict().items()) == list(want.items())
    full = Arg(*(f"v{i}" for i in range(len(fields(Arg)))))  # every field set: a new one must be there too
    assert list(full.to_dict().items()) == list(asdict(full).items())
