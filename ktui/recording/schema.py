"""The recording file: one SQLite database, described here once.

Events are stored as the engine's raw record bytes (one probe per chunk, header +
fetched values, see ktui.events), sorted by time inside the chunk and compressed
with zstandard. Everything else (probes, counters, stacks, symbols) is small and
lives in plain tables, JSON where the value is a structure.

Reading one without ktui (Python, sqlite3, numpy, zstandard):

    meta(key, value)          JSON values: format = "ktui-recording", schema_version,
                              kernel {release, version, machine, build_id}, host,
                              start_ns/end_ns (CLOCK_MONOTONIC of the host),
                              clock_offset_ns (realtime - monotonic at start), ...
    probes(probe_id, spec, layout)
                              spec: the probe model (Probe.to_dict()), JSON;
                              layout: {probe_id, name, spec, fields: [{name, dtype, display}]}.
                              A record is the 56-byte header (ts u64, probe, cpu, pid, tid,
                              uid u32, kstack, ustack s32, flags u32, comm[16]) then the
                              fields at C alignment, the whole padded to 8 bytes.
    chunks(id, probe_id, first_ts, last_ts, count, codec, data)
                              codec "zstd": data decompresses to count records of that
                              probe's layout, sorted by ts. Times are stored as signed
                              64-bit integers (SQLite's only kind): add 2**64 if negative.
    counters(probe_id, cpu, hits, delivered, dropped, filtered, missed)
    probe_states(probe_id, status, reason)
    stacks(probe_id, kernel, user, count)      frames as JSON lists, innermost first
    stack_ids(space, stack_id, addrs)          "k"/"u": the addresses behind an event's
                                               kstack/ustack id, JSON
    histograms(probe_id, value, scale, buckets)  buckets: JSON [[low, high, count], ...]
    symbols(space, scope, addr, name)          "k" with scope "", or "u" with the pid or
                                               binary path; nearest symbol at or below
"""

from __future__ import annotations

SCHEMA_VERSION = 1
FORMAT_NAME = "ktui-recording"
# SQLite's application_id header field: "ktui", so `file` and we can tell our files apart.
APPLICATION_ID = 0x6B747569

CODEC_ZSTD = "zstd"  # raw record bytes, zstandard-compressed

DDL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE probes (probe_id INTEGER PRIMARY KEY, spec TEXT NOT NULL, layout TEXT NOT NULL);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    probe_id INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    count INTEGER NOT NULL,
    codec TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX chunks_by_time ON chunks (first_ts);
CREATE INDEX chunks_by_probe ON chunks (probe_id, first_ts);
CREATE TABLE counters (
    probe_id INTEGER NOT NULL, cpu INTEGER NOT NULL,
    hits INTEGER NOT NULL, delivered INTEGER NOT NULL, dropped INTEGER NOT NULL,
    filtered INTEGER NOT NULL, missed INTEGER NOT NULL,
    PRIMARY KEY (probe_id, cpu)
);
CREATE TABLE probe_states (probe_id INTEGER PRIMARY KEY, status TEXT NOT NULL, reason TEXT NOT NULL);
CREATE TABLE stacks (probe_id INTEGER NOT NULL, kernel TEXT NOT NULL, user TEXT NOT NULL, count INTEGER NOT NULL,
                     PRIMARY KEY (probe_id, kernel, user));
CREATE TABLE stack_ids (space TEXT NOT NULL, stack_id INTEGER NOT NULL, addrs TEXT NOT NULL,
                        PRIMARY KEY (space, stack_id));
CREATE TABLE histograms (probe_id INTEGER NOT NULL, value TEXT NOT NULL, scale TEXT NOT NULL, buckets TEXT NOT NULL,
                         PRIMARY KEY (probe_id, value));
CREATE TABLE symbols (space TEXT NOT NULL, scope TEXT NOT NULL, addr INTEGER NOT NULL, name TEXT NOT NULL,
                      PRIMARY KEY (space, scope, addr));
"""

# Meta keys the writer owns; a caller's meta cannot replace them.
RESERVED_META = ("format", "schema_version")


def to_sql_u64(value: int) -> int:
    """SQLite integers are signed 64-bit; kernel addresses are not."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def from_sql_u64(value: int) -> int:
    return value & ((1 << 64) - 1)
