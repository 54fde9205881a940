"""Parquet export and `ktui query`: real recordings of this kernel, read back by pyarrow, DuckDB and ClickHouse (chdb).

Exact where the truth is exact: N calls made by the test's own child give N rows, whichever engine counts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ktui.cli import main
from ktui.formats.ftrace import import_ftrace
from ktui.recording import RecordingReader

FIX = Path(__file__).parent / "fixtures" / "ftrace"
N_OPEN, N_FAULT = 300, 7
MARK_DFD, FAULT_DFD = 12345, 54321  # dfd values only the test's calls pass: their rows are countable exactly
OPENER = ("import ctypes, sys\nlibc = ctypes.CDLL(None)\n"
          "for i in range(int(sys.argv[1])):\n"
          "    libc.syscall(257, 12345, b'/nonexistent/ktui-parquet-%d' % i, 0)\n"
          "for i in range(int(sys.argv[2])):\n"
          "    libc.syscall(257, 54321, ctypes.c_void_p(8), 0)  # an unreadable address: the fetch faults\n")
N_GETPPID = 20000
PRODUCER = ("import ctypes, sys\nlibc = ctypes.CDLL(None)\n"
            "for _ in range(int(sys.argv[1])):\n    libc.syscall(110)  # SYS_getppid\n")


def _record(path: Path, spec: str, script: str, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "ktui", "record", "-q", spec, "-o", str(path), "--",
                           sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def opens(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pq") / "opens.ktrec"
    _record(path, "tracepoint:syscalls:sys_enter_openat", OPENER, str(N_OPEN), str(N_FAULT))
    return path


@pytest.fixture(scope="module")
def getppid(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pq") / "getppid.ktrec"
    _record(path, "tracepoint:syscalls:sys_enter_getppid", PRODUCER, str(N_GETPPID))
    return path


def _export(rec: Path, out: Path, *extra: str) -> None:
    assert main(["export", str(rec), "--format", "parquet", "-o", str(out), *extra]) == 0


def _query_json(source: Path, sql: str, capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["query", str(source), sql, "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.live
def test_typed_columns_exact_rows_and_faults_as_nulls(opens, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "x"
    _export(opens, out)
    table = pq.read_table(out / "probe_0.parquet")
    schema = table.schema
    assert schema.field("ts").type == pa.uint64() and not schema.field("ts").nullable
    assert schema.field("time").type == pa.timestamp("us", tz="UTC")
    assert schema.field("pid").type == pa.uint32() and schema.field("comm").type == pa.string()
    assert schema.field("dfd").type == pa.int32() and schema.field("mode").type == pa.uint16()
    assert schema.field("filename").type == pa.string()
    rows = table.to_pydict()
    marked = [i for i, d in enumerate(rows["dfd"]) if d == MARK_DFD]
    assert len(marked) == N_OPEN
    assert [rows["filename"][i] for i in marked] == [f"/nonexistent/ktui-parquet-{i}" for i in range(N_OPEN)]
    assert not any(rows["faulted"][i] for i in marked)
    faulted = [i for i, d in enumerate(rows["dfd"]) if d == FAULT_DFD]
    assert len(faulted) == N_FAULT
    assert all(rows["filename"][i] is None and rows["faulted"][i] for i in faulted)
    assert all(rows["flags"][i] & 2 for i in faulted)  # bit 1: fetch 1 (filename) faulted
    # every header value equals the recording's own
    with RecordingReader.open(opens) as r:
        arr = np.concatenate(list(r.events()))
        assert table.num_rows == len(arr) == r.count()
        order = np.argsort(arr["ts"], kind="stable")
        got = np.argsort(np.array(rows["ts"], dtype=np.uint64), kind="stable")
        assert np.array(rows["ts"], dtype=np.uint64)[got].tolist() == arr["ts"][order].tolist()
        assert np.array(rows["pid"])[got].tolist() == arr["pid"][order].tolist()
        assert [rows["comm"][i] for i in got] == [c.decode() for c in arr["comm"][order].tolist()]
        t0 = rows["time"][0]
        expect_us = (rows["ts"][0] + r.clock_offset_ns) // 1000
        assert int(t0.timestamp() * 1_000_000) == pytest.approx(expect_us, abs=1)


@pytest.mark.live
def test_duckdb_and_clickhouse_count_what_the_recording_holds(getppid, tmp_path, capsys):
    chdb = pytest.importorskip("chdb")
    out = tmp_path / "g"
    _export(getppid, out)
    with RecordingReader.open(getppid) as r:
        total = r.count()
        arr = np.concatenate(list(r.events()))
        (counters,) = r.counters().values()
    child = int(np.bincount(arr["pid"]).argmax())
    assert int(np.sum(arr["pid"] == child)) == N_GETPPID  # the producer: exactly its calls
    # DuckDB, over the export directory and over the recording itself
    for source in (out, getppid):
        (row,) = _query_json(source, f"SELECT count(*) AS n, count(*) FILTER (WHERE pid = {child}) AS mine, "
                                     "min(ts) AS lo, max(ts) AS hi FROM events", capsys)
        assert row == {"n": total, "mine": N_GETPPID, "lo": int(arr["ts"].min()), "hi": int(arr["ts"].max())}
    (c,) = _query_json(out, "SELECT sum(delivered) AS d, sum(dropped) AS x FROM counters", capsys)
    assert c == {"d": sum(counters.delivered), "x": sum(counters.dropped)}
    # ClickHouse reads the same files unchanged, with the same widths and types
    f = str(out / "probe_0.parquet")
    got = chdb.query(f"SELECT count(), countIf(pid = {child}), min(ts), max(ts) FROM file('{f}', Parquet)", "CSV")
    assert str(got).strip() == f"{total},{N_GETPPID},{arr['ts'].min()},{arr['ts'].max()}"
    types = {d["name"]: d["type"] for d in map(json.loads, str(chdb.query(
        f"DESCRIBE file('{f}', Parquet)", "JSONEachRow")).splitlines())}
    assert types["ts"] == "UInt64" and types["pid"] == "UInt32" and types["cpu"] == "UInt32"
    assert types["comm"] == "String" and types["kstack"] == "Nullable(Int32)" and types["faulted"] == "Bool"
    assert types["time"] == "DateTime64(6, 'UTC')"
    # the wall clock is the same instant in both engines
    (d,) = _query_json(out, "SELECT epoch_us(time) AS us FROM events ORDER BY ts LIMIT 1", capsys)
    ch = chdb.query(f"SELECT toUnixTimestamp64Micro(time) FROM file('{f}', Parquet) ORDER BY ts LIMIT 1", "CSV")
    assert int(str(ch).strip()) == d["us"]
    cc = chdb.query(f"SELECT sum(delivered) FROM file('{out / 'counters.parquet'}', Parquet)", "CSV")
    assert int(str(cc).strip()) == sum(counters.delivered)


@pytest.mark.live
def test_clickhouse_reads_strings_and_nullable_faults(opens, tmp_path):
    chdb = pytest.importorskip("chdb")
    out = tmp_path / "o"
    _export(opens, out)
    f = str(out / "probe_0.parquet")
    got = chdb.query(f"SELECT countIf(dfd = {MARK_DFD} AND startsWith(filename, '/nonexistent/ktui-parquet-')), "
                     f"countIf(dfd = {FAULT_DFD} AND filename IS NULL AND faulted), toTypeName(any(filename)), "
                     f"toTypeName(any(mode)) FROM file('{f}', Parquet)", "CSV")
    assert str(got).strip() == f'{N_OPEN},{N_FAULT},"Nullable(String)","Nullable(UInt16)"'


@pytest.mark.live
def test_a_query_never_changes_the_recording(getppid, capsys):
    before = (hashlib.sha256(getppid.read_bytes()).hexdigest(), os.stat(getppid).st_mtime_ns,
              sorted(os.listdir(getppid.parent)))
    _query_json(getppid, "SELECT count(*) AS n FROM events", capsys)
    capsys.readouterr()
    assert main(["query", str(getppid), "COPY (SELECT 1) TO 'x.csv'"]) == 2
    assert main(["query", str(getppid), "SELECT * FROM read_csv('/etc/passwd')"]) == 2
    after = (hashlib.sha256(getppid.read_bytes()).hexdigest(), os.stat(getppid).st_mtime_ns,
             sorted(os.listdir(getppid.parent)))
    assert after == before
    assert "x.csv" not in os.listdir(".")


@pytest.mark.live
def test_stacks_views_have_symbols(tmp_path, capsys):
    from helpers import busy_loop_binary

    rec = tmp_path / "p.ktrec"
    assert main(["record", "profile:hz:199", "-o", str(rec), "-q", "--", str(busy_loop_binary()), "1500"]) == 0
    with RecordingReader.open(rec) as r:
        want = {(s.probe_id, s.kernel, s.user, s.count) for s in r.stacks()}
        kstacks = {int(k) for a in r.events() for k in a["kstack"] if k >= 0}
        frames = {k: r.stack_frames(k) for k in kstacks}
    assert want and kstacks
    rows = _query_json(rec, "SELECT probe_id, kernel, \"user\", count FROM stacks", capsys)
    assert {(x["probe_id"], tuple(x["kernel"]), tuple(x["user"]), x["count"]) for x in rows} == want
    rows = _query_json(rec, "SELECT stack_id, frames FROM stack_frames WHERE space = 'k'", capsys)
    assert {x["stack_id"]: x["frames"] for x in rows} == frames
    # an event joined to its symbolized kernel stack
    (j,) = _query_json(rec, "SELECT count(*) AS n FROM events e JOIN stack_frames s ON s.space = 'k' "
                            "AND s.stack_id = e.kstack", capsys)
    with RecordingReader.open(rec) as r:
        assert j["n"] == sum(int(np.sum(a["kstack"] >= 0)) for a in r.events())


# -- without the live kernel: imported ftrace text, bounds, safety -----------------------------------------


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pqm") / "mixed.ktrec"
    import_ftrace(FIX / "mixed.txt", out)
    return out


def test_every_probe_table_holds_its_probes_events(mixed, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "m"
    _export(mixed, out)
    with RecordingReader.open(mixed) as r:
        for probe_id, layout in r.layouts.items():
            t = pq.read_table(out / f"probe_{probe_id}.parquet")
            assert t.num_rows == r.count(probe_ids=[probe_id])
            assert t.schema.metadata[b"ktui.spec"].decode() == layout.spec
        probes = pq.read_table(out / "probes.parquet").to_pylist()
        assert [(p["probe_id"], p["name"], p["events"]) for p in probes] == \
            [(i, r.layouts[i].name, r.count(probe_ids=[i])) for i in sorted(r.layouts)]


def test_row_groups_are_bounded_and_streamed(mixed, tmp_path):
    import pyarrow.parquet as pq

    from ktui.formats.parquet import write_probe

    with RecordingReader.open(mixed) as r:
        probe_id = max(r.layouts, key=lambda i: r.count(probe_ids=[i]))
        n = r.count(probe_ids=[probe_id])
        assert n > 10
        path = tmp_path / "p.parquet"
        with open(path, "wb") as f:
            assert write_probe(r, r.layouts[probe_id], f, row_group_rows=7) == n
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == n
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [7] * (n // 7) + ([n % 7] if n % 7 else [])
    assert meta.row_group(0).column(0).compression == "ZSTD"
    # the encodings the export chooses for speed and size (docs/PARQUET.md): times delta-encoded,
    # comm and the small header columns through a dictionary; the values read back exactly
    columns = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in range(meta.num_columns)}
    assert "DELTA_BINARY_PACKED" in columns["ts"].encodings and "DELTA_BINARY_PACKED" in columns["time"].encodings
    assert all("RLE_DICTIONARY" in columns[c].encodings for c in ("comm", "cpu", "pid", "probe_id"))
    with RecordingReader.open(mixed) as r:
        recorded = np.concatenate(list(r.events(probe_ids=[probe_id])))
    table = pq.read_table(path)
    assert table.column("ts").to_numpy().tolist() == recorded["ts"].tolist()
    assert table.column("pid").to_numpy().tolist() == recorded["pid"].tolist()


def test_c_strings_cut_at_nul_and_survive_invalid_utf8():
    import pyarrow as pa

    from ktui.formats.parquet import c_strings

    col = np.array([b"abc", b"x\x00junk", b"", b"\xff\xfeok", b"12345678"], dtype="S8")
    assert c_strings(pa, col).to_pylist() == ["abc", "x", "", "\ufffd\ufffdok", "12345678"]
    valid = np.array([True, False, True, True, True])
    assert c_strings(pa, col[:3], valid[:3]).to_pylist() == ["abc", None, ""]
    # mostly distinct values take the numpy path: the same answers
    many = np.array([b"v%06d\x00tail" % i for i in range(20000)] + [b"\xff\xfeok"], dtype="S16")
    keep = np.ones(len(many), dtype=bool)
    keep[3] = False
    got = c_strings(pa, many, keep).to_pylist()
    assert got[:3] == ["v000000", "v000001", "v000002"] and got[3] is None and got[-1] == "\ufffd\ufffdok"
    assert got[4:-1] == [f"v{i:06d}" for i in range(4, 20000)]


def test_output_directory_is_private_and_never_through_a_link(mixed, tmp_path, capsys):
    out = tmp_path / "e"
    _export(mixed, out)
    assert os.stat(out).st_mode & 0o777 == 0o700
    assert all(os.stat(p).st_mode & 0o777 == 0o600 for p in out.iterdir())
    # exists: refused without --force, replaced with it
    capsys.readouterr()
    assert main(["export", str(mixed), "--format", "parquet", "-o", str(out)]) != 0
    assert "exists" in capsys.readouterr().err
    _export(mixed, out, "--force")
    # --force never removes a directory of other files
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    assert main(["export", str(mixed), "--format", "parquet", "-o", str(other), "--force"]) != 0
    assert (other / "notes.txt").read_text() == "keep" and len(list(other.iterdir())) == 1
    # a link named DIR is replaced, its target untouched
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    _export(mixed, link, "--force")
    assert not link.is_symlink() and link.is_dir() and list(target.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_a_damaged_chunk_is_said_and_the_rest_exported(mixed, tmp_path, capsys):
    import sqlite3

    import pyarrow.parquet as pq

    bad = tmp_path / "bad.ktrec"
    bad.write_bytes(mixed.read_bytes())
    con = sqlite3.connect(bad)
    cid, probe_id, lost = con.execute("SELECT id, probe_id, count FROM chunks ORDER BY id LIMIT 1").fetchone()
    con.execute("UPDATE chunks SET data = ? WHERE id = ?", (b"\x28\xb5\x2f\xfd" + b"\0" * 32, cid))
    con.commit()
    con.close()
    with RecordingReader.open(mixed) as r:
        want = r.count(probe_ids=[probe_id]) - lost
    capsys.readouterr()
    out = tmp_path / "d"
    assert main(["export", str(bad), "--format", "parquet", "-o", str(out)]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not be read" in err and "exported" in err
    assert pq.read_table(out / f"probe_{probe_id}.parquet").num_rows == want


@pytest.mark.live
def test_a_directory_of_recordings_is_queried_with_a_host_column(tmp_path, getppid, mixed, capsys):
    """`ktui record --host ... -o DIR` makes one recording per host: `ktui query DIR` sees them all, by host."""
    hosts = tmp_path / "hosts"
    hosts.mkdir()
    (hosts / "a.ktrec").write_bytes(getppid.read_bytes())
    (hosts / "b.ktrec").write_bytes(getppid.read_bytes())
    (hosts / "c.ktrec").write_bytes(mixed.read_bytes())
    with RecordingReader.open(getppid) as r:
        a_host, a_count = r.host, r.count()
    with RecordingReader.open(mixed) as r:
        c_host, c_count = r.host, r.count()
    rows = _query_json(hosts, "SELECT host, count(*) AS n FROM events GROUP BY host ORDER BY host", capsys)
    want = sorted([(a_host, a_count), (f"{a_host}:b", a_count), (c_host, c_count)])
    assert [(r["host"], r["n"]) for r in rows] == want
    (c,) = _query_json(hosts, "SELECT count(DISTINCT host) AS hosts, count(*) AS rows FROM counters", capsys)
    assert c["hosts"] == 3
    capsys.readouterr()
    assert main(["query", str(tmp_path), "SELECT 1"]) == 4  # neither an export nor recordings
    err = capsys.readouterr().err
    assert "neither a Parquet export" in err and err.count("\n") == 1


def test_bad_sql_is_one_sentence(mixed, capsys):
    for sql, words in (("selec 1", "not valid SQL"), ("SELECT nope FROM events", "the query failed"),
                       ("SELECT 1; SELECT 2", "one query at a time"), ("", "empty"),
                       ("DROP VIEW events", "only queries")):
        capsys.readouterr()
        assert main(["query", str(mixed), sql]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ktui: ") and words in err and err.count("\n") == 1 and "Traceback" not in err


def test_table_output_is_aligned_and_terminal_safe(mixed, capsys):
    capsys.readouterr()
    assert main(["query", str(mixed), "SELECT probe, count(*) AS n, 'a' || chr(27) || '[2J' AS evil "
                 "FROM events GROUP BY probe ORDER BY probe"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["probe", "n", "evil"] and set(lines[1].replace(" ", "")) == {"-"}
    assert "\x1b" not in "".join(lines) and "a\\x1b[2J" in lines[2]
    with RecordingReader.open(mixed) as r:
        assert sum(int(line.split()[1]) for line in lines[2:-1]) == r.count()
    end = re.search(r"\bn\b", lines[0]).end()  # numbers (and their heading) are right-aligned: they end here
    assert all(line[end - 1].isdigit() and line[end] == " " for line in lines[2:-1])
    capsys.readouterr()
    assert main(["query", str(mixed), "SELECT count(*) AS n FROM counters", "--csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "n"


def test_columnar_libraries_are_not_imported_at_start_up():
    code = ("import sys\nfrom ktui.cli import build_parser\nbuild_parser(['list'])\nbuild_parser(['--help'])\n"
            "print('pyarrow' in sys.modules, 'duckdb' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
