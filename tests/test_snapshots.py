"""Snapshot pictures of every widget in its important states (pictures in snapshots/).

Deterministic: fixed terminal sizes, a fake source with a fixed clock (tests/fake_source.py),
no cursor blink, animations off (conftest), workers finished before the picture.
Update with `pytest tests/test_snapshots.py --snapshot-update` and look at the pictures.
"""

from __future__ import annotations

import pytest

from fake_source import (counters_for, fake_catalog, getppid_layout, make_events, openat_layout, sample_histogram,
                         sample_stacks)
from ktui.events import ProbeState, Update
from ktui.widgets.code_view import CodeView
from ktui.widgets.cpu_counts import CpuCounts
from ktui.widgets.event_stream import EventStreamPane, EventStream
from ktui.widgets.histograms import Histograms
from ktui.widgets.probe_editor import ProbeEditor
from ktui.widgets.stacks import Stacks
from ktui.widgets.status_bar import StatusBar
from ktui.widgets.symbol_browser import SymbolBrowser
from snapshot_apps.main_app import empty, populated
from snapshot_apps.widget_app import WidgetApp

pytestmark = pytest.mark.timeout(120)


async def settled(pilot) -> None:
    from textual.worker import WorkerCancelled

    for _ in range(3):
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerCancelled:  # a newer search replaced an older one: that is the design
            pass
        await pilot.pause()
    draw = getattr(pilot.app, "_draw_slow_panes", None)
    if draw:
        draw()
        await pilot.pause()


# --- the whole screen -----------------------------------------------------------------

def test_main_screen_populated_80x24(snap_compare):
    """80x24: browser with the catalog on the left, the stream of two probes on the right, the status
    line with 5 dropped and 3/3 probes, footer keys."""
    assert snap_compare(populated(), terminal_size=(80, 24), run_before=settled)


def test_main_screen_populated_120x36(snap_compare):
    """120x36: the same, wider: the stream shows the openat values (filename, flags in hex)."""
    assert snap_compare(populated(), terminal_size=(120, 36), run_before=settled)


def test_main_screen_empty(snap_compare):
    """No source yet: an empty stream with its header, the status line at zero."""
    assert snap_compare(empty(), terminal_size=(100, 30), run_before=settled)


def test_demo_banner(snap_compare):
    """Demo mode: the banner says why live tracing is unavailable; DEMO in the status line."""
    app = populated(mode="demo", banner="Live tracing is unavailable: it needs root (BPF programs need "
                    "CAP_BPF and CAP_PERFMON); run ktui with sudo. Showing the bundled demo recording, read-only.")
    assert snap_compare(app, terminal_size=(100, 30), run_before=settled)


def test_cpu_tab(snap_compare):
    """The CPUs tab: one table per probe, hits per CPU with share bars, 5 drops in red on CPU 0; below them
    the COUNT table of openat by (pid, comm), largest first."""
    assert snap_compare(populated(), press=["2"], terminal_size=(100, 40), run_before=settled)


def test_stacks_tab_expanded(snap_compare):
    """The Stacks tab: three stacks sorted by count, the first expanded to its frames."""
    async def before(pilot):
        await settled(pilot)
        await pilot.press("3")
        await pilot.press("space")
    assert snap_compare(populated(), terminal_size=(100, 30), run_before=before)


def test_stack_inspector_80x24(snap_compare):
    """Enter on a stack in the Stacks tab: the inspector with its probe, count, share and every frame whole."""
    async def before(pilot):
        await settled(pilot)
        await pilot.press("3")
        await pilot.press("enter")
        await pilot.pause()
    assert snap_compare(populated(), terminal_size=(80, 24), run_before=before)


def test_histogram_tab(snap_compare):
    """The Hists tab: a log2 latency histogram drawn as bars with ns/us labels."""
    assert snap_compare(populated(), press=["4"], terminal_size=(100, 30), run_before=settled)


def test_probes_tab(snap_compare):
    """The Probes tab: the editor (empty spec) and the probe list."""
    assert snap_compare(populated(), press=["5"], terminal_size=(100, 36), run_before=settled)


def test_help_screen(snap_compare):
    """Help: every key with what it does and its binding id."""
    assert snap_compare(populated(), press=["f1"], terminal_size=(100, 36), run_before=settled)


def test_main_screen_no_color_80x24(snap_compare, monkeypatch):
    """NO_COLOR=1 at 80x24: no colours, and every column readable (the PROBE column is light on dark,
    not grey 237 on black)."""
    monkeypatch.setenv("NO_COLOR", "1")
    app = populated()
    monkeypatch.delenv("NO_COLOR")
    assert snap_compare(app, terminal_size=(80, 24), run_before=settled)


def test_help_screen_80x24(snap_compare):
    """Help at 80x24, live: the keys of live mode only (no replay keys), without the binding-id column,
    in a box that scrolls (scrollbar at the right)."""
    assert snap_compare(populated(), press=["f1"], terminal_size=(80, 24), run_before=settled)


def test_terminal_too_small(snap_compare):
    """50x12: one sentence saying the terminal is too small and how big it must be."""
    assert snap_compare(populated(), terminal_size=(50, 12), run_before=settled)


def test_search_and_detail(snap_compare):
    """Typing 'openat' in the browser: two results, the detail shows the tracepoint's fields."""
    async def before(pilot):
        await settled(pilot)
        await pilot.press("slash", *"openat")
        await settled(pilot)
    assert snap_compare(populated(), terminal_size=(100, 30), run_before=before)


# --- one widget at a time -------------------------------------------------------------

def _browser(state: str):
    def setup(app):
        browser = app.query_one(SymbolBrowser)
        if state == "loading":
            browser.show_loading()
        elif state == "error":
            browser.set_error("The symbol catalog could not be loaded: /proc/kallsyms is not readable.")
        else:
            browser.set_catalog(fake_catalog())
    return WidgetApp(lambda: SymbolBrowser(id="browser"), setup)


@pytest.mark.parametrize("state", ["loading", "error", "populated"])
def test_symbol_browser(snap_compare, state):
    """The browser alone: loading message; an error sentence; the catalog with kind and traceability marks
    (✗ untraceable, i inlined, c clones, d duplicate) and the detail of the first entry."""
    assert snap_compare(_browser(state), terminal_size=(60, 20), run_before=settled)


def test_symbol_browser_no_match(snap_compare):
    """A query that matches nothing: '0 of 10', an empty list, 'Nothing highlighted.'"""
    assert snap_compare(_browser("populated"), press=["tab", *"zzz"], terminal_size=(60, 20), run_before=settled)


def test_symbol_browser_kprobe_detail(snap_compare):
    """A kprobe entry: signature with types, source file:line, address, traceability."""
    async def before(pilot):
        await settled(pilot)
        pilot.app.query_one("#symbol-search").value = "vfs_read"
        await settled(pilot)
    assert snap_compare(_browser("populated"), terminal_size=(60, 20), run_before=before)


def _stream(state: str):
    def setup(app):
        stream = app.query_one(EventStream)
        g, o = getppid_layout(0), openat_layout(1)
        stream.set_layouts({0: g, 1: o})
        if state != "empty":
            stream.append({0: make_events(g, 40), 1: make_events(o, 40, pid=777, comm=b"cat")})
        if state == "filtered":
            stream.set_filter("pid=777")
    return WidgetApp(lambda: EventStreamPane(), setup)


def _stream_similar_names():
    from ktui.events import ProbeLayout

    def setup(app):
        stream = app.query_one(EventStream)
        o = openat_layout(0)
        o2 = ProbeLayout(1, "sys_enter_openat2", "tracepoint:syscalls:sys_enter_openat2", o.fields)
        stream.set_layouts({0: o, 1: o2})
        stream.append({0: make_events(o, 20, pid=777, comm=b"cat"), 1: make_events(o2, 20, pid=778, comm=b"ls")})
    return WidgetApp(lambda: EventStreamPane(), setup)


@pytest.mark.parametrize("state", ["empty", "populated", "filtered"])
def test_event_stream(snap_compare, state):
    """The stream: header only; the newest rows of two interleaved probes (following the end);
    only pid 777's rows after the filter pid=777."""
    async def before(pilot):
        pilot.app.query_one("#stream-filter").display = False
        await settled(pilot)
    assert snap_compare(_stream(state), terminal_size=(100, 16), run_before=before)


def test_event_stream_similar_names_80(snap_compare):
    """80 columns, probes sys_enter_openat and sys_enter_openat2: both names whole in the PROBE column;
    the values go on past the right edge (the last cell says "…")."""
    async def before(pilot):
        pilot.app.query_one("#stream-filter").display = False
        await settled(pilot)
    assert snap_compare(_stream_similar_names(), terminal_size=(80, 12), run_before=before)


def _counts(state: str):
    def setup(app):
        counts = app.query_one(CpuCounts)
        if state == "populated":
            names = {0: "sys_enter_getppid", 1: "sys_enter_openat"}
            counts.set_counters(counters_for({0: 100, 1: 10}), 1.0, names)
            counts.set_counters(counters_for({0: 400, 1: 30}, dropped=7), 2.0, names)
            counts.set_counters(counters_for({0: 1000, 1: 40}, dropped=7), 3.0, names)
    return WidgetApp(lambda: CpuCounts(), setup)


@pytest.mark.parametrize("state", ["empty", "populated"])
def test_cpu_counts(snap_compare, state):
    """Per-CPU counts: the empty hint; hits, rates (300/s then 600/s) as sparklines, 7 drops on CPU 0."""
    assert snap_compare(_counts(state), terminal_size=(80, 14), run_before=settled)


def _key_counts(sort_keys: str = ""):
    from fake_source import sample_counts
    from ktui.events import KeyCounts
    from ktui.widgets.key_counts import KeyCountsView

    def many(grown: int) -> KeyCounts:  # the later workers grow faster: sorting by rate turns the order over
        return KeyCounts(0, ("comm",), [((f"worker{i}".encode(),), 1000 * (1000 - 10 * i) + grown * i)
                                        for i in range(55)])

    def setup(app):
        view = app.query_one(KeyCountsView)
        names = {0: "sys_enter_getppid", 1: "sys_enter_openat"}
        # Two snapshots 2 s apart on the source's clock: the rates are the growth over those 2 s.
        view.set_counts([sample_counts()[0], many(0)], names, 10.0)
        later = sample_counts()[0]
        later = KeyCounts(later.probe_id, later.key_names, [(k, n * 3) for k, n in later.rows])
        view.set_counts([later, many(40)], names, 12.0)
        for key in sort_keys:
            view.cycle_sort() if key == "s" else view.reverse_sort()
    return WidgetApp(lambda: KeyCountsView(), setup)


@pytest.mark.parametrize("sort_keys", ["", "s"], ids=["by_count", "by_rate"])
def test_key_counts(snap_compare, sort_keys):
    """COUNT tables, top-style at 80 columns: openat by (pid, comm) and getppid by comm with counts
    (thousands separators), rates per second from two snapshots 2 s apart and bars; the header says
    the order: by count largest first, or (after `s`) by rate; 50 rows then 'N more' summing the tail."""
    assert snap_compare(_key_counts(sort_keys), terminal_size=(80, 24), run_before=settled)


def _stacks(state: str):
    def setup(app):
        if state == "populated":
            app.query_one(Stacks).set_stacks(sample_stacks(), {2: "profile_49hz"})
    return WidgetApp(lambda: Stacks(), setup)


@pytest.mark.parametrize("state", ["empty", "populated"])
def test_stacks(snap_compare, state):
    """Stacks: the empty hint; three stacks by count with percentages and their probe."""
    assert snap_compare(_stacks(state), terminal_size=(80, 10), run_before=settled)


def _hists(state: str):
    def setup(app):
        if state == "populated":
            app.query_one(Histograms).set_histograms([sample_histogram()], {0: "vfs_read"})
    return WidgetApp(lambda: Histograms(), setup)


@pytest.mark.parametrize("state", ["empty", "populated"])
def test_histograms(snap_compare, state):
    """Histograms: the empty hint; a latency histogram from 1us to 64us as bars."""
    assert snap_compare(_hists(state), terminal_size=(80, 12), run_before=settled)


def _status(state: str):
    def setup(app):
        bar = app.query_one(StatusBar)
        if state == "failures":
            bar.set_state(mode="live", warnings=["kprobes are absent on this kernel (CONFIG_KPROBES is not set)"])
            bar.apply(Update(counters=counters_for({0: 1000}, dropped=12), elapsed_s=1.0, probes=[
                ProbeState(0, "sys_enter_getppid", "tracepoint:syscalls:sys_enter_getppid", "attached"),
                ProbeState(1, "vfs_read", "kprobe:vfs_read", "failed", "kprobes are not available here")]))
        elif state == "filter_80":
            bar.set_state(mode="live", filter_text="pid=777", search_text="openat",
                          warnings=["kprobes are absent on this kernel (CONFIG_KPROBES is not set)"])
            bar.apply(Update(counters=counters_for({0: 123_456}, dropped=12), elapsed_s=1.0))
        else:
            bar.set_state(mode="replay", paused=True)
    return WidgetApp(lambda: StatusBar(), setup)


@pytest.mark.parametrize("state", ["failures", "paused_replay"])
def test_status_bar(snap_compare, state):
    """Status line: LIVE with 12 dropped, 1 of 2 probes failed and the doctor's warning; REPLAY PAUSED."""
    assert snap_compare(_status(state), terminal_size=(120, 3), run_before=settled)


def test_status_bar_80_with_filter(snap_compare):
    """80 columns with a filter and a search active: FILTER pid=777 and FIND openat shown, the drops and
    the warning's first words kept; 'delivered' and 'filtered' are what gave way."""
    assert snap_compare(_status("filter_80"), terminal_size=(80, 3), run_before=settled)


def _editor(state: str):
    def setup(app):
        editor = app.query_one(ProbeEditor)
        entry = fake_catalog().lookup("kprobe:do_sys_openat2")
        editor.load_entry(entry)
        app.query_one("#editor-args").select("filename")
        if state == "filter_error":
            app.query_one("#editor-filter").value = "filename == 3"
        elif state == "spec_error":
            app.query_one("#editor-spec").value = "kprobe:"
    return WidgetApp(lambda: ProbeEditor(), setup)


@pytest.mark.parametrize("state", ["entry", "filter_error", "spec_error"])
def test_probe_editor(snap_compare, state):
    """The editor from kprobe:do_sys_openat2: args ticked from the signature; a filter comparing a string
    with an integer (caret and sentence under the field); a spec that does not parse (sentence under it)."""
    async def before(pilot):
        await settled(pilot)
        if state == "spec_error":  # after the typed value has settled, as a user would press ctrl+n
            pilot.app.query_one(ProbeEditor).action_add_probe()
            await settled(pilot)
    assert snap_compare(_editor(state), terminal_size=(80, 30), run_before=before)


def test_code_view(snap_compare):
    """The generated-C modal: a title, a compile note, the program with line numbers."""
    c_text = "// generated by ktui\nTRACEPOINT_PROBE(syscalls, sys_enter_getppid) {\n    return 0;\n}\n"

    def setup(app):
        app.push_screen(CodeView(c_text, "· probe 0: tracepoint fields read from tracefs"))
    app = WidgetApp(lambda: StatusBar(), setup)
    assert snap_compare(app, terminal_size=(80, 16), run_before=settled)
