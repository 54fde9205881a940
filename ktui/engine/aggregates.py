"""Aggregates: stacks, histograms and keyed counts, read from the kernel's maps and from the stack
ids events carry, symbolized, and handed on as snapshots.

Lock discipline: ``_tally_lock`` guards the stack tallies the drain thread adds to (held for a
dict update per distinct stack in a batch, never around a map read); ``_read_lock`` makes one map
reading at a time (the aggregates thread, the final read at stop, a recorder finishing). The
published snapshots (``stacks``, ``histograms``, ``map_counts``) are replaced whole, never edited,
so a reader needs no lock.

Bounds (the memory of a long session under any load): the kernel's stack map holds 16,384 ids;
the tally keeps at most ``TALLY_MAX`` distinct (kernel stack, user stack, pid) per probe, the
smallest counts dropped first when it is full; symbolized frames are cached for at most
``FRAMES_MAX`` stacks; a COUNT table hands on its ``COUNT_ROWS_MAX`` largest rows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ktui.engine.histograms import read_histogram
from ktui.engine.keycounts import read_key_counts
from ktui.engine.loader import Loader
from ktui.engine.stacks import UNKNOWN, KernelSymbols, UserSymbols
from ktui.engine.unit import Unit
from ktui.events import Histogram, KeyCounts, StackTrace

STACKS_EVERY_S = 0.5  # stack, histogram and count maps are read less often than counters
TALLY_MAX = 16_384  # distinct (kernel stack, user stack, pid) counted per probe
FRAMES_MAX = 32_768  # symbolized stacks kept (a stack id is reused by the kernel for another stack
#                      only after its entry is evicted, which ktui's maps never do)
STACK_IDS_MAX = 65_536  # (kernel, user) stack id pairs remembered for a recording's stack table

StackKey = tuple[int, int, int]  # (kernel stack id or -1, user stack id or -1, pid or 0)


class Aggregates:
    def __init__(self, loader: Loader):
        self._loader = loader
        self._tally_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._tally: dict[int, dict[StackKey, int]] = {}  # probe id -> stack key -> count, from records
        self._stack_ids: set[tuple[int, int]] = set()  # (kstack, ustack) seen in records of the first unit
        self._frames_cache: dict[tuple[int, int, int | None], tuple[str, ...]] = {}
        self._ksyms: KernelSymbols | None = None
        self.usyms = UserSymbols()
        self.in_flight: dict[int, int] = {}  # probe id -> entries waiting in its stash (calls running)
        self._counts_due = 0.0  # a big COUNT table is read less often (its read time x 10)
        # the newest snapshots, replaced whole
        self.stacks: list[StackTrace] = []
        self.histograms: list[Histogram] = []
        self.map_counts: dict[tuple[int, str], KeyCounts] = {}  # (probe id, map) -> as last read

    # ------------------------------------------------------------------ from records (the drain thread)

    def count_stacks(self, gid: int, recs: np.ndarray, first_unit: bool, tally: bool = True) -> None:
        """Tally the stack ids a batch of records carries (``tally`` False: only keep the ids, for a
        probe whose stacks its own map counts)."""
        k, u = recs["kstack"], recs["ustack"]
        has = (k >= 0) | (u >= 0)
        if not has.any():
            return
        keys = np.stack([k[has].astype(np.int64), u[has].astype(np.int64),
                         np.where(u[has] >= 0, recs["pid"][has], 0).astype(np.int64)], axis=1)
        uniq, counts = np.unique(keys, axis=0, return_counts=True)
        rows: list[tuple[StackKey, int]] = [((int(ks), int(us), int(pid)), int(c))
                                            for (ks, us, pid), c in zip(uniq.tolist(), counts.tolist())]
        with self._tally_lock:
            table = self._tally.setdefault(gid, {}) if tally else {}
            for key, c in rows:
                table[key] = table.get(key, 0) + c
                if first_unit and len(self._stack_ids) < STACK_IDS_MAX:
                    self._stack_ids.add((key[0], key[1]))
            if len(table) > TALLY_MAX:
                _keep_largest(table, TALLY_MAX * 3 // 4)
        for (_ks, us, pid), _c in rows:
            if us >= 0:
                self.usyms.remember(pid)  # while the process still lives

    # ------------------------------------------------------------------ from the maps

    def read(self, final: bool = False) -> None:
        """Read every probe's maps and publish new snapshots."""
        with self._read_lock:
            self._read_locked(final)

    def _read_locked(self, final: bool) -> None:
        loader = self._loader
        hists: list[Histogram] = []
        stacks: list[StackTrace] = []
        counts: dict[tuple[int, str], KeyCounts] = {}
        read_counts = final or time.monotonic() >= self._counts_due
        t0 = time.monotonic()
        for unit in loader.units():
            for gid in list(unit.global_ids.values()):
                state = loader.states.get(gid)
                if state is None or state.status == "failed":
                    continue
                self._read_probe(unit, gid, read_counts, hists, stacks, counts)
        stacks.extend(self._tallied())
        self.histograms, self.stacks = hists, _merge_stacks(stacks)
        if read_counts:
            self.map_counts = counts
            self._counts_due = time.monotonic() + max(0.0, 10 * (time.monotonic() - t0) - STACKS_EVERY_S)

    def _read_probe(self, unit: Unit, gid: int, read_counts: bool, hists: list[Histogram],
                    stacks: list[StackTrace], counts: dict[tuple[int, str], KeyCounts]) -> None:
        """One probe's maps, appended to the lists given."""
        cp = self._loader.compiled[gid]
        hist_map = cp.maps.get("hist")
        if hist_map:
            try:
                hists.append(read_histogram(unit.bpf, hist_map, gid, cp.hist))
            except (KeyError, OSError):
                pass
        stack_map = cp.maps.get("stacks") or cp.maps.get("stackcount")
        if stack_map and unit.stacks is not None:
            stacks.extend(self._read_stack_map(unit, stack_map, gid))
        stash = cp.maps.get("start")
        if stash and "entries" in cp.maps:
            try:
                self.in_flight[gid] = _map_len(unit.bpf.get_table(stash.encode()))
            except (KeyError, OSError):
                pass
        if read_counts:
            for spec in cp.counts:
                if spec["map"] is not None:
                    try:
                        counts[(gid, spec["map"])] = read_key_counts(unit.bpf, spec["map"], gid, tuple(spec["key"]))
                    except (KeyError, OSError):
                        pass

    def _tallied(self) -> list[StackTrace]:
        with self._tally_lock:
            tallied = {gid: dict(table) for gid, table in self._tally.items()}
        out = []
        for gid, table in tallied.items():
            owner = self._loader.unit_of[gid]
            for (ks, us, pid), count in table.items():
                out.append(StackTrace(gid, self._frames(owner, ks, None), self._frames(owner, us, pid), count))
        return out

    def read_settled(self, hits: Callable[[int], object], tries: int, settle_s: float) -> tuple[
            list[Histogram], list[StackTrace], dict[tuple[int, str], KeyCounts]]:
        """Every probe's maps, each read while that probe was not hit (``hits(gid)`` the same before
        and after, a few tries), so its map counts agree with its hit count; plus the record tally
        (the caller holds the drain's take_lock, so that agrees with the delivered counts)."""
        hists: list[Histogram] = []
        stacks: list[StackTrace] = []
        counts: dict[tuple[int, str], KeyCounts] = {}
        loader = self._loader
        with self._read_lock:
            for unit in loader.units():
                for gid in list(unit.global_ids.values()):
                    state = loader.states.get(gid)
                    if state is None or state.status == "failed":
                        continue
                    maps = self._loader.compiled[gid].maps
                    has_maps = any(k.split("_")[0] in ("hist", "stacks", "stackcount", "count") for k in maps)
                    h: list[Histogram] = []
                    s: list[StackTrace] = []
                    c: dict[tuple[int, str], KeyCounts] = {}
                    for _ in range(tries if has_maps else 1):
                        h, s, c = [], [], {}
                        before = hits(gid)
                        if has_maps:
                            time.sleep(settle_s)  # a program that counted a hit has finished its map updates
                        self._read_probe(unit, gid, True, h, s, c)
                        if hits(gid) == before:
                            break
                    hists += h
                    stacks += s
                    counts.update(c)
            stacks.extend(self._tallied())
        return hists, _merge_stacks(stacks), counts

    def _read_stack_map(self, unit: Unit, map_name: str, gid: int) -> list[StackTrace]:
        out: list[StackTrace] = []
        try:
            items = unit.bpf.get_table(map_name.encode()).items()
        except (KeyError, OSError):
            return out
        rows = [(_field(key, ("k", "kstack"), -1), _field(key, ("u", "ustack"), -1), _field(key, ("pid", "tgid"), 0),
                 _count(value)) for key, value in items]  # struct ktui_stackkey { s32 k; s32 u; u32 pid; }
        for _ks, us, pid, _n in rows:  # first, while they live: symbolizing the rest may take a while
            if us >= 0 and pid:
                self.usyms.remember(pid)
        for ks, us, pid, count in rows:
            kernel, user = self._frames(unit, ks, None), self._frames(unit, us, pid)
            if not kernel and not user:
                kernel = (no_stack_label(ks, us),)
            out.append(StackTrace(gid, kernel, user, count))
        return out

    # ------------------------------------------------------------------ symbols

    def _frames(self, unit: Unit, stack_id: int, pid: int | None) -> tuple[str, ...]:
        if stack_id < 0 or unit.stacks is None:
            return ()
        key = (id(unit), stack_id, pid)
        cached = self._frames_cache.get(key)
        if cached is not None:
            return cached
        addrs = unit.stacks.addresses(stack_id)
        if pid is None:
            frames = tuple(self.kernel_symbols().lookup_many(addrs))
        else:
            frames = tuple(self.usyms.lookup(pid, a) for a in addrs)
        if addrs:
            if len(self._frames_cache) >= FRAMES_MAX:
                self._frames_cache.clear()  # symbolized again on demand: cheap next to a bound broken
            self._frames_cache[key] = frames
        return frames or (UNKNOWN,)

    def event_frames(self, probe_id: int, stack_id: int, user: bool, pid: int | None) -> list[str]:
        """The frames of one event's stack id, from the stack map of the unit that holds its probe."""
        unit = self._loader.unit_of.get(probe_id)
        if unit is None or stack_id < 0 or (user and pid is None):
            return []
        return list(self._frames(unit, stack_id, pid if user else None))

    def kernel_symbols(self) -> KernelSymbols:
        if self._ksyms is None:
            self._ksyms = KernelSymbols()
        return self._ksyms

    def symbolize(self, address: int, pid: int | None = None) -> str:
        if pid:
            return self.usyms.lookup(pid, address)
        return self.kernel_symbols().lookup(address)

    def record_stack_ids(self, rec: Any) -> None:
        """The addresses behind the stack ids events carried, with their symbols, into a recording."""
        units = self._loader.units()
        if not units or units[0].stacks is None:
            return
        reader = units[0].stacks
        with self._tally_lock:
            stack_ids = set(self._stack_ids)
            pids_of = {us: pid for table in self._tally.values() for _ks, us, pid in table if us >= 0}
        if not stack_ids:
            return
        kernel: dict[int, list[int]] = {}
        user: dict[int, list[int]] = {}
        ksyms: dict[int, str] = {}
        usyms: dict[tuple[int, int], str] = {}
        for ks, us in stack_ids:
            if ks >= 0 and ks not in kernel:
                kernel[ks] = reader.addresses(ks)
                for a, name in zip(kernel[ks], self.kernel_symbols().lookup_many(kernel[ks])):
                    ksyms[a] = name
            if us >= 0 and us not in user:
                user[us] = reader.addresses(us)
                pid = pids_of.get(us, 0)
                for a in user[us]:
                    usyms[(pid, a)] = self.usyms.lookup(pid, a)
        rec.add_stack_ids(kernel, user)
        rec.add_symbols(ksyms, usyms)


_EFAULT, _ENOMEM, _EEXIST = 14, 12, 17


def no_stack_label(kstack: int, ustack: int) -> str:
    """What a sample with no frames at all was, from the stack ids its program stored (-1: not asked
    for; else bpf_get_stackid's error). A sample in user mode has no kernel call chain (EFAULT):
    it is a busy CPU, never idle (an idle CPU's samples have the idle loop's kernel frames)."""
    if kstack == -_EFAULT and ustack == -1:
        return "[user mode: user stacks not taken]"
    if kstack in (-1, -_EFAULT) and ustack == -_EFAULT:
        return "[user mode: user stack not readable]"
    if -_ENOMEM in (kstack, ustack):
        return "[stack not kept: the stack map is full]"
    if -_EEXIST in (kstack, ustack):
        return "[stack not kept: its id collided in the stack map]"
    if kstack == -1 and ustack == -1:
        return "[no stack asked for]"
    return f"[no stack: error {-min(kstack, ustack)}]"


def _keep_largest(table: dict[StackKey, int], n: int) -> None:
    """Drop all but the n largest counts (in place)."""
    keep = sorted(table.items(), key=lambda kv: -kv[1])[:n]
    table.clear()
    table.update(keep)


def _count(value: Any) -> int:
    """A stack map's count, per-CPU (a list) or not, however BCC hands it over."""
    items: list[Any] = value if isinstance(value, list) else [value]
    total = 0
    for v in items:
        total += int(v.value if hasattr(v, "value") else v)
    return total


def _map_len(table: Any) -> int:
    n = 0
    for _ in table.keys():
        n += 1
    return n


def _field(key: Any, names: Iterable[str], default: int) -> int:
    for name in names:
        if hasattr(key, name):
            return int(getattr(key, name))
    return default


def _merge_stacks(stacks: list[StackTrace]) -> list[StackTrace]:
    merged: dict[tuple[int, tuple[str, ...], tuple[str, ...]], StackTrace] = {}
    for s in stacks:
        key = (s.probe_id, s.kernel, s.user)
        if key in merged:
            merged[key].count += s.count
        else:
            merged[key] = StackTrace(s.probe_id, s.kernel, s.user, s.count)
    return sorted(merged.values(), key=lambda s: -s.count)
