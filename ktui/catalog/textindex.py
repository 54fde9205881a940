"""Vectorised matching over one newline-joined ASCII text of names (numpy, no Python loop per name)."""

from __future__ import annotations

import numpy as np


class TextIndex:
    """``text`` is names joined by newlines; rows are names. All positions are byte offsets."""

    def __init__(self, text: str, starts: np.ndarray):
        self.buf = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        self.starts = starts
        ends = np.empty_like(starts)
        if len(starts):
            ends[:-1] = starts[1:] - 1
            ends[-1] = len(self.buf)
        self.ends = ends
        self._pos: dict[int, np.ndarray] = {}
        # row number of every byte (newlines belong to the row before): a gather, not a binary search
        lens = np.empty_like(starts)
        if len(starts):
            lens[:-1] = starts[1:] - starts[:-1]
            lens[-1] = len(self.buf) - starts[-1]
        self.rowid = np.repeat(np.arange(len(starts), dtype=np.int32), lens)

    _BIT = None

    @classmethod
    def _bits(cls) -> np.ndarray:
        """A 64-bit class per byte value: which characters a name contains, as one word."""
        if cls._BIT is None:
            bit = np.zeros(256, dtype=np.uint64)
            for c in range(256):
                ch = chr(c)
                if "a" <= ch <= "z":
                    k = c - 97
                elif "0" <= ch <= "9":
                    k = 26 + c - 48
                elif ch in "_.:/-":
                    k = 36 + "_.:/-".index(ch)
                elif c == 10:
                    continue
                else:
                    k = 41 + c % 23
                bit[c] = np.uint64(1) << np.uint64(k)
            cls._BIT = bit
        return cls._BIT

    @property
    def charmask(self) -> np.ndarray:
        m = getattr(self, "_charmask", None)
        if m is None:
            vals = self._bits()[self.buf]
            m = np.bitwise_or.reduceat(vals, self.starts) if len(self.starts) else np.zeros(0, np.uint64)
            # reduceat on an empty row gives that row's first byte (the newline): its bit is zero
            self._charmask = m
        return m

    def rows_with_chars(self, q: bytes) -> np.ndarray:
        """Boolean per row: the name contains every character of ``q`` (a cheap prefilter)."""
        bits = self._bits()
        need = np.bitwise_or.reduce(bits[np.frombuffer(q, dtype=np.uint8)])
        found: np.ndarray = (self.charmask & need) == need
        return found

    @staticmethod
    def _first_per_row(rows: np.ndarray) -> np.ndarray:
        """Indexes of the first item of each run in a non-decreasing array."""
        if not len(rows):
            return np.zeros(0, np.int64)
        return np.concatenate(([0], np.flatnonzero(rows[1:] != rows[:-1]) + 1))

    def positions(self, ch: int) -> np.ndarray:
        p = self._pos.get(ch)
        if p is None:
            p = np.flatnonzero(self.buf == ch)
            if len(self._pos) > 64:
                self._pos.clear()
            self._pos[ch] = p
        return p

    def _clip(self, p: np.ndarray, a: int, b: int) -> np.ndarray:
        lo, hi = np.searchsorted(p, a, "left"), np.searchsorted(p, b, "left")
        return p[lo:hi]

    def substring(self, q: bytes, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, first match position) of names within bytes [a, b) containing ``q``."""
        cand = self._clip(self.positions(q[0]), a, b)
        n = len(self.buf)
        for k in range(1, len(q)):
            if not len(cand):
                break
            idx = cand + k
            ok = idx < n
            cand = cand[ok]
            cand = cand[self.buf[idx[ok]] == q[k]]
        if not len(cand):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        rows = self.rowid[cand]
        first = self._first_per_row(rows)
        return rows[first].astype(np.int64), cand[first]

    def subsequence(self, q: bytes, a: int, b: int, min_start: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, span start, span end) of names containing ``q``'s characters in order,
        using the earliest chain from each name's first occurrence of ``q[0]`` (at or after
        ``min_start[row]`` when given, e.g. the start of a name's last ``:`` part)."""
        p0 = self._clip(self.positions(q[0]), a, b)
        if len(q) > 1 and len(p0):
            p0 = p0[self.rows_with_chars(q)[self.rowid[p0]]]
        if min_start is not None and len(p0):
            p0 = p0[p0 >= min_start[self.rowid[p0]]]
        if not len(p0):
            z = np.zeros(0, np.int64)
            return z, z, z
        rows = self.rowid[p0]
        first = self._first_per_row(rows)
        rows = rows[first].astype(np.int64)
        start = p0[first]
        ptr = start + 1
        ends = self.ends[rows]
        for ch in q[1:]:
            P = self.positions(ch)
            if not len(P):
                z = np.zeros(0, np.int64)
                return z, z, z
            j = np.searchsorted(P, ptr, "left")
            ok = j < len(P)
            nxt = P[np.minimum(j, len(P) - 1)]
            ok &= nxt < ends
            rows, start, ends, ptr = rows[ok], start[ok], ends[ok], nxt[ok] + 1
            if not len(rows):
                break
        return rows, start, ptr
