"""The stream's bounded window: exact counts, time order, every kept row readable (property-based)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fake_source import getppid_layout, make_events, openat_layout
from ktui.widgets.event_stream import EventWindow, text_filter

LAYOUTS = {0: getppid_layout(0), 1: openat_layout(1)}

# An update: per probe, how many events (0..40); ts keep increasing across updates.
updates = st.lists(st.fixed_dictionaries({0: st.integers(0, 40), 1: st.integers(0, 40)}), max_size=12)


@settings(max_examples=150, deadline=None)
@given(updates, st.integers(1, 60), st.sampled_from(["", "pid=777", "cat", "probe=sys_enter_openat"]))
def test_window_keeps_exactly_the_newest_rows_in_time_order(plan, capacity, query):
    window = EventWindow(capacity)
    window.set_filter(text_filter(query, LAYOUTS))
    expected = []  # (ts, probe, pid) of every event, in merge order
    start = {0: 0, 1: 0}
    for sizes in plan:
        events = {}
        for probe_id, n in sizes.items():
            pid = 4242 if probe_id == 0 else 777
            comm = b"loadgen" if probe_id == 0 else b"cat"
            events[probe_id] = make_events(LAYOUTS[probe_id], n, start=start[probe_id], pid=pid, comm=comm)
            start[probe_id] += n
        got = window.append(events)
        assert got == sum(sizes.values())
        merged = sorted(((int(r["ts"]), pid_, int(r["pid"])) for pid_, arr in events.items() for r in arr),
                        key=lambda t: t[0])
        expected.extend(merged)
        kept = expected[-capacity:] if expected else []
        assert len(window) == len(kept)
        rows = [window.record(window.first + i) for i in range(len(window))]
        assert [(int(r["ts"]), p, int(r["pid"])) for p, r in rows] == kept
        visible = [window.record(window.visible_abs(i)) for i in range(window.visible_count)]
        match = text_filter(query, LAYOUTS)
        want = [k for k in kept if match is None or
                bool(match(k[1], np.array([next(r for p, r in rows if int(r["ts"]) == k[0])]))[0])]
        assert [(int(r["ts"]), p, int(r["pid"])) for p, r in visible] == want
        assert window.count(pid=777) == sum(1 for k in kept if k[2] == 777)


def test_an_update_larger_than_the_window_keeps_its_tail():
    window = EventWindow(100)
    window.append({0: make_events(LAYOUTS[0], 250), 1: make_events(LAYOUTS[1], 250, pid=777)})
    assert len(window) == 100 and window.total == 500 and window.first == 400
    ts = [int(window.record(window.first + i)[1]["ts"]) for i in range(100)]
    assert ts == sorted(ts)


def test_interleaved_chunks_survive_trimming():
    """Regression: the oldest referenced chunk is the minimum id, not the first row's."""
    window = EventWindow(50)
    for i in range(20):
        window.append({1: make_events(LAYOUTS[1], 7, start=7 * i, pid=777),
                       0: make_events(LAYOUTS[0], 3, start=3 * i)})
        for j in range(len(window)):
            window.record(window.first + j)


def test_update_merge_concatenates_each_probe_once_in_order_and_keeps_the_newest_snapshots():
    from fake_source import counters_for, sample_counts
    from ktui.events import Update

    merge_many = Update.merge

    g, o = LAYOUTS[0], LAYOUTS[1]
    ups = [Update(events={0: make_events(g, 3)}, counters=counters_for({0: 3}), elapsed_s=1.0),
           Update(events={0: make_events(g, 0, start=3), 1: make_events(o, 2)}, counts=sample_counts(),
                  message="hello"),
           Update(events={0: make_events(g, 4, start=3)}, counters=counters_for({0: 7}), elapsed_s=2.0,
                  finished=True)]
    merged = merge_many(ups)
    assert merged.events[0]["ts"].tolist() == make_events(g, 7)["ts"].tolist()
    assert len(merged.events[1]) == 2
    assert merged.counters == counters_for({0: 7}) and merged.elapsed_s == 2.0
    assert merged.counts == sample_counts() and merged.message == "hello" and merged.finished
    assert merge_many(ups[:1]) is ups[0]
    # With a window, each probe keeps only its newest events (the engine's outbox under a slow sink).
    kept = Update.merge(ups, window=5)
    assert kept.events[0]["ts"].tolist() == make_events(g, 7)["ts"].tolist()[-5:]
    assert len(kept.events[1]) == 2 and kept.finished


def test_search_text_matches_string_values_and_a_number_the_pid():
    """One rule for the stream's search, live and replay (ktui.row_filter): free text is found in the
    comm, the probe name and any string value (a filename), a bare number is also the pid or tid."""
    opens = make_events(LAYOUTS[1], 3, pid=777, comm=b"cat")
    opens["filename"] = [b"/etc/hostname", b"/etc/passwd", b"/tmp/x"]
    calls = make_events(LAYOUTS[0], 2, pid=4242)
    hostname = text_filter("hostname", LAYOUTS)
    assert hostname is not None
    assert hostname(1, opens).tolist() == [True, False, False]
    assert hostname(0, calls).tolist() == [False, False]  # no string value holds it
    pid = text_filter("777", LAYOUTS)
    assert pid is not None and pid(1, opens).tolist() == [True] * 3 and pid(0, calls).tolist() == [False] * 2
    exact = text_filter("filename=/etc/passwd", LAYOUTS)
    assert exact is not None and exact(1, opens).tolist() == [False, True, False]
