"""The top-style COUNT table's rules (ktui/rates.py): rates from successive snapshots, the order."""

from __future__ import annotations

import pytest

from ktui.events import KeyCounts
from ktui.rates import KeyRates, RatedRow, next_sort_column, sort_caption, sort_rows


def table(rows, probe_id=3, keys=("comm",)):
    return KeyCounts(probe_id, keys, rows)


def by_key(rates, kc):
    return {r.key: r.rate for r in rates.rows(kc)}


def test_the_first_snapshot_has_no_rate():
    rates = KeyRates()
    kc = table([((b"a",), 10)])
    rates.observe([kc], 100.0)
    assert by_key(rates, kc) == {(b"a",): None}


def test_rate_is_growth_over_the_time_base_and_stands_between_fixes():
    rates = KeyRates(base_s=1.0)
    rates.observe([table([((b"a",), 10), ((b"b",), 5)])], 100.0)
    rates.observe([table([((b"a",), 15), ((b"b",), 5)])], 100.5)  # too soon: no rate yet
    assert by_key(rates, table([((b"a",), 15)])) == {(b"a",): None}
    second = table([((b"a",), 30), ((b"b",), 9), ((b"c",), 4)])
    rates.observe([second], 102.0)  # 2 s after the baseline
    assert by_key(rates, second) == {(b"a",): 10.0, (b"b",): 2.0, (b"c",): 2.0}  # c counted from zero
    later = table([((b"a",), 31), ((b"b",), 9), ((b"c",), 4)])
    rates.observe([later], 102.4)  # between fixes: the last rates stand
    assert by_key(rates, later) == {(b"a",): 10.0, (b"b",): 2.0, (b"c",): 2.0}
    rates.observe([table([((b"a",), 40), ((b"b",), 9), ((b"c",), 4)])], 103.0)
    assert by_key(rates, later) == {(b"a",): 10.0, (b"b",): 0.0, (b"c",): 0.0}


def test_a_shrinking_count_or_a_clock_going_back_starts_over():
    rates = KeyRates(base_s=1.0)
    rates.observe([table([((b"a",), 10)])], 100.0)
    rates.observe([table([((b"a",), 20)])], 101.0)
    assert by_key(rates, table([((b"a",), 20)])) == {(b"a",): 10.0}
    rates.observe([table([((b"a",), 3)])], 102.0)  # a new source counts from zero
    assert by_key(rates, table([((b"a",), 3)])) == {(b"a",): None}
    rates.observe([table([((b"a",), 5)])], 50.0)  # the clock went back
    assert by_key(rates, table([((b"a",), 5)])) == {(b"a",): None}
    rates.observe([table([((b"a",), 5)])], None)  # no clock at all
    assert by_key(rates, table([((b"a",), 5)])) == {(b"a",): None}


def test_tables_are_told_apart_by_probe_and_key():
    rates = KeyRates(base_s=1.0)
    rates.observe([table([((1,), 10)], 1, ("pid",)), table([((1,), 100)], 2, ("pid",))], 0.0)
    one, two = table([((1,), 20)], 1, ("pid",)), table([((1,), 400)], 2, ("pid",))
    rates.observe([one, two], 2.0)
    assert by_key(rates, one) == {(1,): 5.0} and by_key(rates, two) == {(1,): 150.0}


ROWS = [RatedRow((b"bash",), 5, 9.0), RatedRow((b"cat",), 50, 1.0), RatedRow((b"awk",), 7, None),
        RatedRow((b"zsh",), 50, 2.0)]


def names(rows):
    return [r.key[0].decode() for r in rows]


def test_sort_by_count_rate_key_and_reversed():
    assert names(sort_rows(ROWS)) == ["cat", "zsh", "awk", "bash"]  # ties: the key
    assert names(sort_rows(ROWS, "rate")) == ["bash", "zsh", "cat", "awk"]  # unknown rate as 0
    assert names(sort_rows(ROWS, "key")) == ["awk", "bash", "cat", "zsh"]
    assert names(sort_rows(ROWS, "count", reverse=True)) == ["bash", "awk", "zsh", "cat"]
    pids = [RatedRow((10,), 1, None), RatedRow((9,), 1, None), RatedRow((100,), 1, None)]
    assert [r.key[0] for r in sort_rows(pids, "key")] == [9, 10, 100]  # numbers in number order
    with pytest.raises(ValueError):
        sort_rows(ROWS, "colour")


def test_sort_cycle_and_caption():
    assert [next_sort_column(c) for c in ("count", "rate", "key")] == ["rate", "key", "count"]
    assert sort_caption("count", False) == "sorted by count ↓"
    assert sort_caption("count", True) == "sorted by count ↑"
    assert sort_caption("key", False) == "sorted by key ↑"
