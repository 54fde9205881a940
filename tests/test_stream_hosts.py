"""The event stream's HOST column: probes of several hosts (replay of per-host recordings here; live
over ssh in tests/test_remote_hosts.py) show the host in a column of its own and the probe's own name
whole at 80 columns; one host's probes show no such column."""

from __future__ import annotations

import pytest

from fake_source import run_async_tests
from helpers.stream_screen import replayed_screen
from ktui.events import ProbeCounters, ProbeHosts
from ktui.kernel import KernelIdentity
from ktui.recording import RecordingWriter
from ktui.recording.synthetic import LAYOUTS, records
from ktui.units import short_hosts

pytestmark = pytest.mark.timeout(120)
IDENT = KernelIdentity("6.1.0-test", "#1", "x86_64", "abc")
N = 40  # events per file: all on screen at 80x24 is not needed, only that both hosts appear


def test_short_host_names_keep_addresses_whole_and_never_make_two_hosts_one():
    assert short_hosts(["web1.example.com", "db1.example.com"]) == {"web1.example.com": "web1",
                                                                  "db1.example.com": "db1"}
    assert short_hosts(["10.77.0.2", "10.77.0.6"]) == {"10.77.0.2": "10.77.0.2", "10.77.0.6": "10.77.0.6"}
    assert short_hosts(["web1.a.com", "web1.b.com", "db1"]) == {"web1.a.com": "web1.a.com",
                                                               "web1.b.com": "web1.b.com", "db1": "db1"}
    assert short_hosts(["fe80::1", "[::1]"]) == {"fe80::1": "fe80::1", "[::1]": "[::1]"}


def _recording(path, host: str, t0: int, seed: int):
    w = RecordingWriter.create(path, IDENT, LAYOUTS[:1], meta={"host": host, "clock_offset_ns": 10**18})
    w.append(0, records(LAYOUTS[0], N, t0=t0, step=1_000_000, seed=seed))
    w.set_counters({0: ProbeCounters([N], [N], [0], [0])})
    w.close()
    return path


async def test_replay_of_two_hosts_has_a_host_column_and_whole_probe_names_at_80_columns(tmp_path):
    a = _recording(tmp_path / "web1.example.com.ktrec", "web1.example.com", 5_000_000_000, 1)
    b = _recording(tmp_path / "db1.example.com.ktrec", "db1.example.com", 5_000_500_000, 2)
    header, rows, source = await replayed_screen([a, b], 2 * N)
    assert isinstance(source, ProbeHosts)
    assert header.split()[2:6] == ["COMM", "PID", "HOST", "PROBE"]
    # every row: its host's short name in the HOST column, then the probe's own name, whole
    hosts = [r.split()[4] for r in rows]
    assert set(hosts) == {"web1", "db1"} and len(rows) > 10
    assert all(r.split()[5] == "sys_enter_getppid" for r in rows), rows
    # the files interleave by time (b's events 0.5 ms after a's): hosts alternate row by row
    assert all(h1 != h2 for h1, h2 in zip(hosts, hosts[1:])), hosts
    # other panes keep the host in the name (HOST:probe): one name per probe everywhere else
    assert sorted(lay.name for lay in source.layouts.values()) == [
        "db1.example.com:sys_enter_getppid", "web1.example.com:sys_enter_getppid"]


async def test_one_host_has_no_host_column(tmp_path):
    a = _recording(tmp_path / "web1.ktrec", "web1.example.com", 5_000_000_000, 1)
    header, rows, _ = await replayed_screen([a], N)
    assert "HOST" not in header and header.split()[4] == "PROBE"
    assert rows and all(r.split()[4] == "sys_enter_getppid" for r in rows)


run_async_tests(globals())
