"""Pilot tests of the main flows, with a fake source (the live path is in test_app_live.py)."""

from __future__ import annotations

import numpy as np
import pytest

from fake_source import (FakeSource, RecordingFactory, counters_for, fake_catalog, getppid_layout, make_events,
                         run_async_tests,
                         openat_layout, populated_updates, sample_stacks)
from ktui.app import KtuiApp
from ktui.events import ProbeState, Update
from ktui.probes.model import ActionKind, Probe, ProbeKind
from ktui.widgets.cpu_counts import CpuCounts
from ktui.widgets.event_stream import EventStream
from ktui.widgets.probe_editor import ProbeEditor
from ktui.widgets.probe_list import ProbeList
from ktui.widgets.stacks import Stacks
from ktui.widgets.symbol_browser import SymbolList

SIZE = (100, 32)
pytestmark = pytest.mark.timeout(60)


async def settle(app, pilot, times: int = 3) -> None:
    for _ in range(times):
        await app.workers.wait_for_complete()
        await pilot.pause()


def app_with(source=None, **kw) -> KtuiApp:
    kw.setdefault("catalog_loader", fake_catalog)
    return KtuiApp(source=source, **kw)


async def test_search_a_symbol_and_pick_it():
    app = app_with(mode="live", source_factory=RecordingFactory())
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"getppid")
        await settle(app, pilot)
        symbols = app.query_one(SymbolList)
        assert len(symbols.rows) == 1
        assert symbols.entry.name == "tracepoint:syscalls:sys_enter_getppid"
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.query_one("#panes").active == "probes"
        assert app.query_one("#editor-spec").value == "tracepoint:syscalls:sys_enter_getppid"


@pytest.mark.parametrize("mode,query,expected", [
    ("glob", "tcp_*", ["kprobe:tcp_connect", "kprobe:tcp_v4_rcv"]),
    ("regex", "^kprobe:vfs_", ["kprobe:vfs_read"]),
    ("fuzzy", "dsopen", ["kprobe:do_sys_openat2"]),
    ("auto", "dsopen", ["kprobe:do_sys_openat2"]),  # a plain word: ranked fuzzy
    ("auto", "tcp_*", ["kprobe:tcp_connect", "kprobe:tcp_v4_rcv"]),  # a pattern: glob
])
async def test_search_modes(mode, query, expected):
    app = app_with()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        browser = app.query_one("#browser")
        await pilot.press("slash")
        for _ in range(4):
            if browser.mode == mode:
                break
            await pilot.press("f2")
        await pilot.press(*query)
        await settle(app, pilot)
        symbols = app.query_one(SymbolList)
        assert [symbols.catalog.entry(i).name for i in symbols.rows] == expected


async def test_bad_regex_is_one_sentence_and_the_app_keeps_running():
    app = app_with()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", "f2", "f2", *"foo(")  # auto, glob, regex
        await settle(app, pilot)
        assert "regular expression" in str(app.query_one("#symbol-count").render())
        assert app.query_one("#browser").state == "ready"


async def test_build_a_probe_with_args_and_a_filter_then_start_it():
    factory = RecordingFactory()
    app = app_with(mode="live", source_factory=factory)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"sys_enter_openat", "enter")
        await settle(app, pilot)
        editor = app.query_one(ProbeEditor)
        args = app.query_one("#editor-args")
        assert [args.get_option_at_index(i).value for i in range(args.option_count)] == \
            ["dfd", "filename", "flags", "mode"]
        args.select("filename")
        app.query_one("#editor-filter").focus()
        await pilot.press(*'pid ==')
        await pilot.pause()
        error = str(app.query_one("#editor-filter-error").render())
        assert "^" in error and "column" in error  # caret under the fault, as you type
        await pilot.press(*' 42 && comm == "cat"')
        await pilot.pause()
        assert "filter ok" in str(app.query_one("#editor-filter-error").render())
        await pilot.press("ctrl+n")
        await settle(app, pilot)
        assert factory.calls, "adding a probe must start tracing"
        probe = factory.calls[-1][-1]
        assert probe.spec == "tracepoint:syscalls:sys_enter_openat"
        assert [f.name for f in probe.fetches] == ["filename"]
        assert probe.filter == 'pid == 42 && comm == "cat"'
        assert [a.kind for a in probe.actions] == [ActionKind.STREAM, ActionKind.COUNT]
        assert app.query_one(ProbeList).row_count == 1
        assert editor.is_mounted


async def test_unknown_filter_name_lists_what_is_available():
    app = app_with(mode="live", source_factory=RecordingFactory())
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"sys_enter_getppid", "enter")
        await settle(app, pilot)
        app.query_one("#editor-filter").focus()
        await pilot.press(*"nosuch == 1")
        await pilot.pause()
        error = str(app.query_one("#editor-filter-error").render())
        assert "unknown name 'nosuch'" in error and "comm" in error
        await pilot.press("ctrl+n")
        await settle(app, pilot)
        assert app.probes == []  # nothing is added while the filter is wrong


async def test_a_spec_that_does_not_parse_is_shown_next_to_the_field():
    app = app_with(mode="live", source_factory=RecordingFactory())
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("5")
        app.query_one("#editor-spec").focus()
        await pilot.press(*"nosuchkind:foo", "ctrl+n")
        await settle(app, pilot)
        assert str(app.query_one("#editor-spec-error").render()).strip()
        assert app.probes == []


async def test_pasted_kprobe_events_line_builds_a_probe():
    factory = RecordingFactory()
    app = app_with(mode="live", source_factory=factory)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("5")
        app.query_one("#editor-spec").focus()
        await pilot.press(*"p:myopen do_sys_openat2 dfd=%di:s32", "ctrl+n")
        await settle(app, pilot)
        probe = app.probes[-1]
        assert probe.kind is ProbeKind.KPROBE and probe.target == "do_sys_openat2"
        assert [f.name for f in probe.fetches] == ["dfd"]


def _streaming_updates(layouts):
    g = next(iter(layouts.values()))
    return [Update(events={g.probe_id: make_events(g, 25, pid=999)}, counters=counters_for({g.probe_id: 25}),
                   probes=[ProbeState(g.probe_id, g.name, g.spec, "attached")], stacks=sample_stacks(),
                   elapsed_s=1.0)]


async def test_started_probe_streams_events_counts_and_stacks_then_disable_it():
    factory = RecordingFactory(_streaming_updates)
    app = app_with(mode="live", source_factory=factory)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"sys_enter_getppid", "enter", "ctrl+n")
        await settle(app, pilot, 5)
        stream = app.query_one(EventStream)
        assert stream.window.count(pid=999) == 25
        await pilot.press("2")
        await settle(app, pilot)
        assert app.query_one(CpuCounts).cpu_total(0) == 25
        await pilot.press("3")
        await settle(app, pilot)
        assert len(app.query_one(Stacks).root.children) == 3
        assert app.query_one(ProbeList).get_row_at(0)[3].plain == "attached"
        # Disable: the fake source cannot toggle in place, so the app restarts it without the probe.
        await pilot.press("5")
        app.query_one(ProbeList).focus()
        await pilot.press("space")
        await settle(app, pilot, 5)
        assert app.probes[0].enabled is False
        assert factory.sources[0].stopped
        assert app.query_one(ProbeList).get_row_at(0)[0] == "○"


class InPlaceSource(FakeSource):
    """A source that changes probes in place, as LiveSource does (it declares events.ProbeControl)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.toggles: list[tuple[int, bool]] = []
        self.added: list[Probe] = []
        self.removed: list[int] = []
        self.probe_ids = sorted(self.layouts)

    def enable_probe(self, probe_id: int, enabled: bool) -> None:
        self.toggles.append((probe_id, enabled))

    def add_probe(self, probe) -> int:
        self.added.append(probe)
        probe_id = max(self.probe_ids, default=-1) + 1
        self.probe_ids.append(probe_id)
        return probe_id

    def remove_probe(self, probe_id: int) -> None:
        self.removed.append(probe_id)
        self.probe_ids.remove(probe_id)


async def test_probes_change_in_place_while_tracing():
    g = getppid_layout(0)
    source = InPlaceSource({0: g}, [])
    probe = Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid")
    app = app_with(source=source, probes=[probe], mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("5")
        app.query_one(ProbeList).focus()
        await pilot.press("space")
        await settle(app, pilot)
        assert source.toggles == [(0, False)]
        await pilot.press("space")
        await settle(app, pilot)
        assert source.toggles == [(0, False), (0, True)]
        app.query_one("#editor-spec").value = "tracepoint:sched:sched_switch"
        await pilot.press("ctrl+n")
        await settle(app, pilot)
        assert [p.spec for p in source.added] == ["tracepoint:sched:sched_switch"]
        assert app.live.probes[1].spec == "tracepoint:sched:sched_switch"  # keyed by the id the source gave
        # The rows name probes by id: removing the first, then toggling the (now first) row hits id 1.
        await pilot.press("5")
        table = app.query_one(ProbeList)
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("delete")
        await settle(app, pilot)
        assert source.removed == []  # removing asks first
        await pilot.press("y")
        await settle(app, pilot)
        assert source.removed == [0]
        table.move_cursor(row=0)
        await pilot.press("space")
        await settle(app, pilot)
        assert source.toggles[-1] == (1, False)
        assert not source.stopped


async def test_save_the_session(tmp_path):
    session_mod = pytest.importorskip("ktui.session", reason="ktui.session is not in this tree yet")
    path = tmp_path / "s.toml"
    probe = Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid", filter="pid == 1")
    app = app_with(source=InPlaceSource({0: getppid_layout(0)}), probes=[probe], mode="live",
                   session_path=str(path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+s")
        await settle(app, pilot)
    loaded = session_mod.Session.load(str(path))
    assert [p.spec for p in loaded.probes] == ["tracepoint:syscalls:sys_enter_getppid"]
    assert loaded.probes[0].filter == "pid == 1"


async def test_quit_stops_the_source():
    source = FakeSource({0: getppid_layout(0)}, populated_updates())
    app = app_with(source=source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("q")
        await pilot.pause()
    assert source.stopped and app.source is None


async def test_ctrl_c_quits_even_from_a_text_box():
    source = FakeSource({0: getppid_layout(0)})
    app = app_with(source=source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", "ctrl+c")
        await pilot.pause()
    assert source.stopped


async def test_replay_is_read_only():
    source = FakeSource({0: getppid_layout(0), 1: openat_layout(1)}, populated_updates())
    source.live = False
    app = app_with(source=source, mode="replay", banner="Replaying demo.ktrec (read-only).")
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.query_one(ProbeEditor).disabled
        await pilot.press("5")
        app.query_one(ProbeList).focus()
        await pilot.press("space", "delete")
        await settle(app, pilot)
        assert app.query_one(ProbeList).row_count == 2
        assert app.query_one(EventStream).window.count(probe_id=1) == 10


async def test_source_that_cannot_start_says_why_and_keeps_running():
    class Refusing(FakeSource):
        def start(self, sink):
            from ktui.errors import CapabilityError

            raise CapabilityError("kprobes are not available on this kernel (CONFIG_KPROBES is not set).")

    app = app_with(source=Refusing({}), mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        banner = app.query_one("#banner")
        assert banner.display and "CONFIG_KPROBES" in str(banner.render())
        assert app.is_running


async def test_stream_follow_pause_and_filter():
    g, o = getppid_layout(0), openat_layout(1)
    source = FakeSource({0: g, 1: o}, [])
    app = app_with(source=source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        source.push(Update(events={0: make_events(g, 500), 1: make_events(o, 100, pid=777, comm=b"cat")}))
        await settle(app, pilot)
        stream = app.query_one(EventStream)
        assert stream.is_vertical_scroll_end and stream.follow
        await pilot.press("space")  # pause: new events do not move the view
        y = stream.scroll_y
        source.push(Update(events={0: make_events(g, 100, start=500)}))
        await settle(app, pilot)
        assert stream.scroll_y == y and stream.window.visible_count == 700
        await pilot.press("f", *"pid=777", "enter")
        await settle(app, pilot)
        assert stream.window.visible_count == 100


async def test_stream_find_next_and_previous():
    """s searches (the filter's syntax) without hiding rows: Enter finds the first match from the top row
    on screen, n the next, N the previous, both wrapping around, and the view stops following to keep
    the match in sight."""
    g = getppid_layout(0)
    events = make_events(g, 300)
    marked = [40, 41, 200]  # rows of pid 777 among pid 4242's
    events["pid"][marked] = 777
    source = FakeSource({0: g}, [Update(events={0: events})])
    app = app_with(source, mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        stream = app.query_one(EventStream)
        stream.focus()
        await pilot.press("home")  # read from the top (stops following)
        await settle(app, pilot)
        await pilot.press("s", *"pid=777", "enter")
        await settle(app, pilot)
        found = lambda: stream.window.record(stream.match_abs)[1]["ts"]  # noqa: E731
        assert stream.match_abs is not None and int(found()) == int(events["ts"][40])
        assert not stream.follow and stream.window.visible_count == 300  # nothing hidden
        await pilot.press("n")
        assert int(found()) == int(events["ts"][41])
        await pilot.press("n")
        assert int(found()) == int(events["ts"][200])
        assert stream.scroll_offset.y <= 200 < stream.scroll_offset.y + stream.scrollable_content_region.height
        await pilot.press("n")  # no later match: wraps to the first (a notice says so)
        assert int(found()) == int(events["ts"][40])
        await pilot.press("N")  # and back over the top to the last
        assert int(found()) == int(events["ts"][200])
        await pilot.press("N", "N")
        assert int(found()) == int(events["ts"][40])
        # The found row is drawn reversed.
        y = 40 - int(stream.scroll_offset.y)
        assert any(seg.style and seg.style.reverse for seg in stream.render_line(y))


async def test_footer_follows_focus_and_rebuilds_once_per_change():
    """The footer shows the focused pane's keys; a tab switch rebuilds it once, and a bindings signal
    that changes nothing shown rebuilds nothing."""
    from ktui.widgets.footer import KtuiFooter

    app = app_with(FakeSource({0: getppid_layout(0)}, populated_updates()[:1]), mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        footer = app.query_one(KtuiFooter)
        rebuilt = []
        original = footer.recompose

        async def counted():
            rebuilt.append(1)
            await original()
        footer.recompose = counted

        def shown() -> list[str]:
            return [k.description for k in footer.query("FooterKey")]
        assert "Follow/pause" in shown()
        await pilot.press("5")
        await settle(app, pilot)
        assert "Follow/pause" not in shown() and "Enable/disable" in shown()
        assert len(rebuilt) == 1
        app.screen.refresh_bindings()
        app.screen.refresh_bindings()
        await settle(app, pilot)
        assert len(rebuilt) == 1
        await pilot.press("1")
        await settle(app, pilot)
        assert "Follow/pause" in shown() and len(rebuilt) == 2


REPLAY_KEYS = {"app.pause", "app.seek_back", "app.seek_forward", "app.step", "app.faster", "app.slower",
               "app.sql",  # SQL over the open recording
               "app.cursor_back", "app.cursor_forward", "app.cursor_back_far", "app.cursor_forward_far",
               "app.window", "app.window_clear", "app.rate_probe", "app.mark_next", "app.mark_previous"}
LIVE_KEYS = {"app.add_probe", "app.show_c", "app.save", "probes.toggle", "probes.remove"}


async def test_help_lists_every_key_of_live_mode_and_no_replay_key():
    app = app_with()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("f1")
        await pilot.pause()
        from ktui.widgets.help_screen import HelpScreen

        assert isinstance(app.screen, HelpScreen)
        ids = {row[3] for row in app.screen.rows}
        for binding in KtuiApp.BINDINGS:
            assert (binding.id in ids) == (binding.id not in REPLAY_KEYS), binding.id
        assert {"app.add_probe", "stream.follow", "probes.toggle", "browser.mode"} <= ids
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_help_and_palette_in_replay_list_the_replay_keys_and_no_live_key():
    from ktui import app_main
    from ktui.widgets.help_screen import HelpScreen

    app = KtuiApp(source=app_main._replay_source([str(app_main.DEMO_RECORDING)]), mode="demo")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        ids = {row[3] for row in app.screen.rows}
        assert REPLAY_KEYS <= ids
        assert not LIVE_KEYS & ids
        # 80x24: the list is longer than the box; the keyboard scrolls it.
        box = app.screen.query_one("#help-box")
        assert box.max_scroll_y > 0
        await pilot.press("pagedown")
        await pilot.pause()
        assert box.scroll_y > 0
        await pilot.press("escape")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert any("Back 10s" in t for t in titles) and any("Faster" in t for t in titles)
        assert not any(w in t for t in titles for w in ("Add probe", "Show C", "Save", "Enable/disable"))


async def test_every_action_is_in_the_command_palette():
    app = app_with()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for needle in ("Add probe", "Show C", "Follow/pause", "Enable/disable", "Remove", "Search mode", "Help",
                       "Save"):
            assert any(needle in t for t in titles), needle
        assert not any(w in t for t in titles for w in ("Back 10s", "Faster", "Pause")), titles  # live: no replay keys


async def test_terminal_too_small_says_so():
    app = app_with()
    async with app.run_test(size=(50, 12)) as pilot:
        await settle(app, pilot)
        assert "needs at least" in str(app.query_one("#too-small").render())
        assert app.screen.has_class("too-small")


async def test_updates_coalesce_without_losing_events():
    g = getppid_layout(0)
    source = FakeSource({0: g}, [])
    app = app_with(source=source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        for i in range(50):  # faster than the UI drains: merged into one pending update
            source.push(Update(events={0: make_events(g, 10, start=10 * i)}))
        await settle(app, pilot)
        assert app.query_one(EventStream).window.count() == 500
        assert app.updates_applied < 50
        ts = np.array([app.query_one(EventStream).window.record(i)[1]["ts"] for i in range(500)])
        assert np.all(np.diff(ts.astype(np.int64)) > 0)


@pytest.mark.live  # the compiler reads the tracepoint's format from tracefs
async def test_show_the_generated_program():
    app = app_with(mode="live", source_factory=RecordingFactory())
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"sys_enter_getppid", "enter", "ctrl+g")
        await settle(app, pilot)
        from ktui.widgets.code_view import CodeView

        assert isinstance(app.screen, CodeView), str(app.main_query("#editor-spec-error").render())
        assert "sys_enter_getppid" in app.screen.c_text
        assert "bpf_probe_write_user" not in app.screen.c_text
        await pilot.press("escape")
        assert not isinstance(app.screen, CodeView)


async def test_count_per_key_from_the_editor_builds_a_keyed_count():
    """The editor's count key (builtins or arguments) becomes the COUNT action's key; an argument counted
    by is fetched; a name that is neither is a sentence under the field and nothing is added."""
    factory = RecordingFactory()
    app = app_with(mode="live", source_factory=factory)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"sys_enter_openat", "enter")
        await settle(app, pilot)
        key = app.query_one("#editor-count-key")
        assert key.value == "cpu"
        key.value = "pid nosuch"
        await pilot.pause()
        error = str(app.query_one("#editor-count-error").render())
        assert "count key 'nosuch' is neither a builtin" in error and "filename" in error
        await pilot.press("ctrl+n")
        await settle(app, pilot)
        assert app.probes == []
        key.value = "pid, comm, dfd"
        await pilot.pause()
        assert str(app.query_one("#editor-count-error").render()) == ""
        await pilot.press("ctrl+n")
        await settle(app, pilot)
        probe = factory.calls[-1][-1]
        counts = [a for a in probe.actions if a.kind is ActionKind.COUNT]
        assert [a.key for a in counts] == [("pid", "comm", "dfd")]
        # nothing ticked: zero-script capture, the compiler records every field (dfd, the key, among them)
        assert probe.fetches == []
        from ktui.compiler import compile_session
        from ktui.compiler.fallback import KernelFacts

        layout = compile_session([probe], facts=KernelFacts(False, False, "test")).probes[0].layout
        assert [f.name for f in layout.fields] == ["dfd", "filename", "flags_value", "mode"]


async def test_count_tables_show_in_the_cpus_tab_sorted_by_count():
    from fake_source import sample_counts
    from ktui.events import KeyCounts
    from ktui.widgets.key_counts import KeyCountsView

    unsorted = KeyCounts(1, ("comm",), [((b"a",), 1), ((b"b",), 9), ((b"c",), 4)])
    source = FakeSource({0: getppid_layout(0), 1: openat_layout(1)},
                        [Update(counters=counters_for({0: 60, 1: 21}), counts=sample_counts() + [unsorted],
                                elapsed_s=1.0)])
    app = app_with(source, mode="live")
    async with app.run_test(size=(100, 50)) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        await settle(app, pilot)
        view = app.query_one(KeyCountsView)
        assert view.display
        # The count by cpu is the per-CPU table above: only the keyed tables are listed here.
        assert [kc.key_names for kc in view.tables] == [("pid", "comm"), ("comm",)]
        import io

        from rich.console import Console

        out = io.StringIO()
        Console(file=out, width=100, color_system=None).print(view._render_all())
        lines = [line.split() for line in out.getvalue().splitlines()]
        assert ["sys_enter_openat", "count", "by", "pid,", "comm:", "21", "in", "4", "keys,",
                "sorted", "by", "count", "↓"] in lines
        # One snapshot so far: no time base for a rate yet, so the rate column says "-", not a guess.
        rows = [line[:4] for line in lines if len(line) == 5 and line[2].isdigit()]
        assert rows == [["777", "cat", "10", "-"], ["4242", "loadgen", "7", "-"], ["1", "systemd", "3", "-"],
                        ["312", "sshd", "1", "-"]]
        comm_rows = [line[:3] for line in lines if len(line) == 4 and line[0] in "abc"]
        assert comm_rows == [["b", "9", "-"], ["c", "4", "-"], ["a", "1", "-"]]  # by count, whatever order arrived
        # A new source starts from zero: the tables go with the old one.
        app.reset_panes(False)
        assert view.tables == [] and not view.display


run_async_tests(globals())
