"""The Textual app: symbol browser, probe editor and live panes around one EventSource.

Data flows one way (memray's pattern): the source's thread calls ``sink``; updates
coalesce into one pending Update and one queued message; the handler applies it to
the panes inside ``batch_update()``. Widgets render what they are given and post
messages up. What each mode does with them lives in a controller (``ktui/screens/``):
live probes and the source's life, replay controls, the editor's requests, recording.
The app composes the panes and forwards to those controllers.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import replace
from pathlib import Path
from collections.abc import Callable

from textual import events, on, work
from textual.geometry import Size
from textual.dom import NoScreen
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Input, Static, TabbedContent, TabPane

from ktui.engine.outbox import Mailbox
from ktui.errors import KtuiError
from ktui.events import EventSource, EventStacks, ProbeHosts, ProbeState, Update
from ktui.probes.model import Probe
from ktui.screens.editor import EditorController
from ktui.screens.live import STARTING, LiveController
from ktui.screens.recording import RecordingController
from ktui.screens.query import QueryController
from ktui.screens.replay import ReplayController
from ktui.screens.session import SessionController
from ktui.session import Session
from ktui.textsafe import term_safe
from ktui.widgets.cpu_counts import CpuCounts
from ktui.widgets.event_stream import EventStream, EventStreamPane, StreamFilter, StreamSearch
from ktui.widgets.focus import focus_now
from ktui.widgets.footer import KtuiFooter
from ktui.widgets.help_screen import HelpScreen, available, binding_rows
from ktui.widgets.histograms import Histograms
from ktui.widgets.escape_keys import use_escape_then_key
from ktui.widgets.key_queue import HoldsKeys, KeyQueue
from ktui.widgets.key_counts import CountsScroll, KeyCountsView
from ktui.widgets.no_color import use_legible_monochrome
from ktui.widgets.messages import (CatalogLoaded, EntryChosen, ProbeRemoved, ProbeSubmitted, ProbeToggled,
                                   UpdateArrived)
from ktui.widgets.probe_editor import ProbeEditor
from ktui.widgets.probe_list import ProbeList
from ktui.widgets.flame import FlameGraph, FlameView
from ktui.widgets.stacks import Stacks
from ktui.widgets.status_bar import StatusBar
from ktui.widgets.symbol_browser import SymbolBrowser
from ktui.widgets.timeline import Timeline

STREAM_WINDOW = 100_000  # events per probe kept while the UI thread is behind (the stream shows 100,000)

def source_seconds(update: Update) -> float:
    """The source's own clock: event time when it has one (a replay's rates are recording-time rates)."""
    return update.now_ns / 1e9 if update.now_ns else update.elapsed_s


MIN_WIDTH, MIN_HEIGHT = 60, 16  # below this the panes cannot show a row of an event
# Narrower than this (80x24 over SSH) the browser folds away and the panes get the width;
# / or b brings it back. A replay folds it too: nothing can be added to a recording.
BROWSER_MIN_WIDTH = 100
SLOW_PANES_HZ = 4  # stacks, histograms and counts redraw at most this often


class KtuiApp(App):
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))  # absolute: subclasses (tests) live elsewhere
    TITLE = "ktui"
    AUTO_FOCUS = "#event-stream"

    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True, id="app.quit_ctrl_c"),
        Binding("f1", "help", "Help", id="app.help"),
        Binding("question_mark", "help", "Help", show=False, id="app.help_question"),
        Binding("slash", "focus_search", "Search", id="app.search"),
        Binding("1", "show_tab('stream')", "Stream", show=False, id="app.tab_stream"),
        Binding("2", "show_tab('cpus')", "CPUs", show=False, id="app.tab_cpus"),
        Binding("3", "show_tab('stacks')", "Stacks", show=False, id="app.tab_stacks"),
        Binding("4", "show_tab('hists')", "Hists", show=False, id="app.tab_hists"),
        Binding("5", "show_tab('probes')", "Probes", id="app.tab_probes"),
        Binding("ctrl+n", "add_probe", "Add probe", id="app.add_probe"),
        Binding("ctrl+g", "show_c", "Show C", id="app.show_c"),
        Binding("escape", "leave_input", "Leave the text box", show=False, id="app.leave_input"),
        Binding("b", "toggle_browser", "Browser", id="app.browser"),
        Binding("p", "pause_replay", "Pause", id="app.pause"),
        Binding("left_square_bracket", "seek(-10)", "Back 10s", show=False, id="app.seek_back"),
        Binding("right_square_bracket", "seek(10)", "Forward 10s", show=False, id="app.seek_forward"),
        Binding("full_stop", "step", "Step", show=False, id="app.step"),
        Binding("h", "cursor(-1)", "Cursor back", show=False, id="app.cursor_back"),
        Binding("l", "cursor(1)", "Cursor forward", show=False, id="app.cursor_forward"),
        Binding("H", "cursor(-10)", "Cursor back 10", show=False, id="app.cursor_back_far"),
        Binding("L", "cursor(10)", "Cursor forward 10", show=False, id="app.cursor_forward_far"),
        Binding("v", "mark_window", "Window", id="app.window"),
        Binding("m", "jump_mark(1)", "Next mark", show=False, id="app.mark_next"),
        Binding("M", "jump_mark(-1)", "Previous mark", show=False, id="app.mark_previous"),
        Binding("x", "clear_window", "Whole recording", show=False, id="app.window_clear"),
        Binding("t", "rate_probe", "Rate of a probe", show=False, id="app.rate_probe"),
        Binding("g", "flame", "Flame/tree", show=False, id="app.flame"),
        Binding("plus", "speed(2)", "Faster", show=False, id="app.faster"),
        Binding("minus", "speed(0.5)", "Slower", show=False, id="app.slower"),
        Binding("ctrl+s", "save_session", "Save", id="app.save"),
        Binding("ctrl+o", "save_session_as", "Save as", show=False, id="app.save_as"),
        Binding("ctrl+r", "record", "Record", id="app.record"),
        Binding("colon", "sql", "SQL", id="app.sql"),
    ]

    def __init__(
        self,
        *,
        source: EventSource | None = None,
        probes: list[Probe] | None = None,
        source_factory: Callable[[list[Probe]], EventSource] | None = None,
        catalog_loader: Callable[[], object] | None = None,
        mode: str = "live",
        banner: str = "",
        session_path: str | None = None,
        warnings: list[str] | None = None,
        warnings_loader: Callable[[], list[str]] | None = None,
        session: Session | None = None,
    ) -> None:
        super().__init__()
        use_legible_monochrome(self)  # NO_COLOR: no colours, but no dark grey on black either
        self.initial_source = source
        self.live = LiveController(self, list(probes or []), source_factory)
        self.replay = ReplayController(self)
        self.editor = EditorController(self)
        self.recording = RecordingController(self)
        self.sql = QueryController(self)
        self.sessions = SessionController(self, session)
        self.catalog_loader = catalog_loader
        self.mode = mode  # "live", "replay", "demo"
        self.banner = banner
        self.session_path = session_path
        self.warnings = list(warnings or [])
        self.warnings_loader = warnings_loader
        self.states: dict[int, ProbeState] = {}  # by probe id, as the source last said
        # Updates not yet applied (one message queued for them), merged to the stream's window when the
        # UI thread falls behind, so what waits is bounded whatever the load. Each is tagged with the
        # generation of the source that sent it, checked again when applied: the source may be replaced
        # between the sink's check and the put, and a new source numbers its probes from 0, so an old
        # update applied late would label rows with another probe's layout.
        self._pending = Mailbox(window=STREAM_WINDOW)
        self._latest: Update | None = None  # last snapshot for panes that redraw slowly
        self._slow_drawn = 0.0
        self._slow_pending = False  # a trailing draw is scheduled for the last update of a burst
        self.updates_applied = 0
        self._seek_generation = 0
        self.last_applied = 0.0  # monotonic time of the last applied update (bench, tests)
        self._panes: dict[type, object] = {}
        self._shown_tab = "stream"
        self.browser_wanted: bool | None = None  # b or / said show (True) or hide (False); None: by width
        self.keys = KeyQueue(lambda: self.focused or self.screen, lambda event: App.on_event(self, event),
                             hold=self._keys_on_hold,
                             screen=lambda: self.screen if self.screen_stack else None)

    def _keys_on_hold(self) -> bool:
        """Whether the next key must wait for an answer still coming (KeyQueue.hold)."""
        screen = self.screen if self.screen_stack else None
        if isinstance(screen, HoldsKeys) and screen.holds_keys:
            return True
        return bool(self.main_query(SymbolBrowser).enter_pending)

    def get_driver_class(self):
        # Escape and the key after it, arriving together, are two keys (ktui/widgets/escape_keys.py).
        return use_escape_then_key(super().get_driver_class())

    # --- layout --------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(term_safe(self.banner), id="banner", markup=False)
        yield Timeline(id="timeline")  # shown for a replay (ReplayController.attach_timeline)
        with Horizontal(id="main"):
            yield SymbolBrowser(id="browser")
            with TabbedContent(id="panes", initial="stream"):
                with TabPane("Stream", id="stream"):
                    yield EventStreamPane(id="stream-pane")
                with TabPane("CPUs", id="cpus"):
                    with CountsScroll(id="cpus-scroll"):
                        yield CpuCounts(id="cpu-counts")
                        yield KeyCountsView(id="key-counts")
                with TabPane("Stacks", id="stacks"):
                    yield Stacks(id="stacks-tree")
                    yield FlameView(id="flame")  # g: the same stacks as a flame graph
                with TabPane("Hists", id="hists"):
                    with VerticalScroll(id="hists-scroll"):
                        yield Histograms(id="histograms")
                with TabPane("Probes", id="probes"):
                    yield ProbeEditor(id="editor")
                    yield ProbeList(id="probe-list")
        yield Static("", id="too-small", markup=False)
        yield StatusBar(id="status")
        yield KtuiFooter()

    def notify(self, message: str, *, title: str = "", severity="information", timeout: float | None = None,
               markup: bool = True) -> None:
        """Every toast (the app's and the widgets') shows its text as text: data in a message (a path, a
        probe name, an error) is neither markup nor control characters sent to the terminal."""
        super().notify(term_safe(message, multiline=True), title=term_safe(title), severity=severity,
                       timeout=timeout, markup=False)

    def main_query(self, selector, expect_type=None):
        """query_one on the main screen: a modal (help, generated C, palette) may be on top."""
        screen = self.screen_stack[0] if self.screen_stack else self.screen
        return screen.query_one(selector, expect_type) if expect_type else screen.query_one(selector)

    def load_keymap(self) -> None:
        """Remap keys by binding id from keymap.toml in ktui's config directory (or $KTUI_KEYMAP):
        ``"app.quit" = "ctrl+q"``. A bad file is reported in the status line, never fatal."""
        import os
        import tomllib

        import platformdirs

        path = Path(os.environ.get("KTUI_KEYMAP") or Path(platformdirs.user_config_dir("ktui")) / "keymap.toml")
        try:
            if not path.is_file():
                return
        except OSError as err:  # an unreadable config directory (another user's HOME): say so, keep going
            self.warnings.insert(0, f"{path}: keymap ignored: {err.strerror or err}")
            return
        try:
            data = tomllib.loads(path.read_text())
            keymap = {str(k): str(v) for k, v in data.items() if isinstance(v, str)}
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            self.warnings.insert(0, f"{path}: keymap ignored: {err}")
            return
        self.set_keymap(keymap)

    def on_mount(self) -> None:
        self.load_keymap()
        self.main_query("#banner").display = bool(self.banner)
        self.main_query(StreamFilter).display = False
        status = self.main_query(StatusBar)
        status.set_state(mode=self.mode, warnings=self.warnings)
        editable = self.mode == "live"
        self.main_query(ProbeList).read_only = not editable
        self.main_query(ProbeEditor).disabled = not editable
        self.show_probes()
        self.sessions.restore()
        self._check_size()
        self._load_catalog()
        if self.warnings_loader is not None:
            self._load_warnings()
        if self.initial_source is not None:
            self.live.adopt(self.initial_source)
            self.initial_source = None
        elif self.mode == "live" and self.live.probes:
            self.live.restart()
        try:  # SIGTERM quits like q does, so the source detaches its probes
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: self.call_later(self.action_quit))
        except (RuntimeError, ValueError, NotImplementedError):  # not the main thread (tests)
            pass

    async def on_event(self, event: events.Event) -> None:
        # From the terminal, keys and pastes one at a time, in the order typed (ktui/widgets/key_queue.py).
        if isinstance(event, (events.Key, events.Paste)) and not event.is_forwarded:
            self.keys.put(event)
            return
        await super().on_event(event)

    def on_resize(self, event: events.Resize) -> None:
        self._check_size(event.size)  # the event's size: self.size may still be the old one here

    def _check_size(self, size: Size | None = None) -> None:
        w, h = size or self.size
        small = w < MIN_WIDTH or h < MIN_HEIGHT
        self.main_query("#too-small", Static).update(
            f"The terminal is {w}x{h}; ktui needs at least {MIN_WIDTH}x{MIN_HEIGHT}. Enlarge it (q quits)."
            if small else "")
        self.screen.set_class(small, "too-small")
        if self.browser_wanted is None:  # the user has not said: fold it where it would crowd the panes
            self.main_query("#browser").display = w >= BROWSER_MIN_WIDTH and self.mode == "live"

    # --- the catalog -----------------------------------------------------------------
    @work(thread=True, exclusive=True, group="catalog", exit_on_error=False)
    def _load_catalog(self) -> None:
        loader = self.catalog_loader
        if loader is None:
            self.post_message(CatalogLoaded(None, "No symbol catalog in this mode; type a probe point in the Probes tab."))
            return
        try:
            catalog = loader()
        except KtuiError as err:
            self.post_message(CatalogLoaded(None, str(err)))
            return
        except Exception as err:  # the catalog is optional: say why and keep running
            self.post_message(CatalogLoaded(None, f"The symbol catalog could not be loaded: {err}"))
            return
        self.post_message(CatalogLoaded(catalog))

    @work(thread=True, group="doctor", exit_on_error=False)
    def _load_warnings(self) -> None:
        loader = self.warnings_loader
        if loader is None:
            return
        try:
            warnings = list(loader())
        except Exception:  # advice only: without it the status line just has no warning
            return
        self.call_from_thread(self._show_warnings, warnings)

    def _show_warnings(self, warnings: list[str]) -> None:
        self.warnings = [w for w in self.warnings if "keymap ignored" in w] + warnings
        self.main_query(StatusBar).set_state(warnings=self.warnings)

    @on(CatalogLoaded)
    def _catalog_loaded(self, event: CatalogLoaded) -> None:
        browser = self.main_query(SymbolBrowser)
        if event.catalog is None:
            browser.set_error(event.error)
        else:
            browser.set_catalog(event.catalog)
            self.main_query(ProbeEditor).catalog = event.catalog  # names resolved and checked against it

    # --- the source (its life is the live controller's) ---------------------------------
    @property
    def source(self) -> EventSource | None:
        return self.live.slot.source

    @property
    def probes(self) -> list[Probe]:
        """The session's probes: those with ids, then those being added."""
        return self.live.all_probes()

    @property
    def replay_paused(self) -> bool:
        return self.replay.paused

    def sink(self, update: Update, generation: int) -> None:
        """Called on the source's thread: queue the update, post at most one message for the queue.
        Updates of a source already replaced are dropped."""
        if generation != self.live.slot.generation:
            return
        if self._pending.put(update, generation):
            self.post_message(UpdateArrived(update))

    def discard_pending(self) -> None:
        self._pending.clear()

    def source_started(self) -> None:
        self.bind_layouts()
        # Only "starting…" goes: this runs after the source's own updates may have arrived (its
        # thread and the starter's race), and a replay that already stopped must keep saying why.
        status = self.main_query(StatusBar)
        if status.message == STARTING:
            status.set_state(message="")
        if self.source is not None and not self.source.live:
            self.replay.started()

    def source_failed(self, sentence: str) -> None:
        # Its probes never ran: the probe list says failed, not "pending" as if they were still coming
        # (the source that failed sends no states; a new source, when a probe is added, starts afresh).
        for probe_id, probe in self.live.probes.items():
            if probe.enabled and probe_id not in self.states:
                self.states[probe_id] = ProbeState(probe_id, probe.name, probe.spec, "failed", sentence)
        self.show_probes()
        self.main_query(StatusBar).set_state(mode="stopped", message="")
        self.show_banner(sentence)
        self.editor.show_error(sentence)

    def show_banner(self, sentence: str) -> None:
        self.banner = sentence
        banner = self.main_query("#banner", Static)
        banner.update(term_safe(sentence))
        banner.display = bool(sentence)

    def bind_layouts(self) -> None:
        source = self.source
        if source is None:
            return
        hosts = dict(source.probe_hosts) if isinstance(source, ProbeHosts) else None
        stream = self.main_query(EventStream)
        stream.set_layouts(dict(source.layouts), source.symbolize, hosts)
        stream.stack_frames = source.stack_frames if isinstance(source, EventStacks) else None
        self.sessions.reapply_filter()
        self.show_probes()

    def _names(self) -> dict[int, str]:
        layouts = self.source.layouts if self.source is not None else {}
        names = {pid: lay.name for pid, lay in layouts.items()}
        for pid, p in self.live.probes.items():
            names.setdefault(pid, p.name)
        return names

    def stop_source(self) -> None:
        """Stop the source (detaches every live probe). Idempotent, callable from any thread."""
        self.live.slot.stop()

    def reset_panes(self, clear: bool) -> None:
        if clear:
            self.main_query(EventStream).clear()
        self.main_query(CpuCounts).reset()
        self.main_query(KeyCountsView).reset()
        self._latest = None
        self.states = {}
        self.show_probes()

    @on(UpdateArrived)
    def _update_arrived(self, _event: UpdateArrived) -> None:
        taken = self._pending.take()
        if taken is None or taken[1] != self.live.slot.generation:
            return  # nothing, or only updates of a replaced source
        update = taken[0]
        if not self.screen_stack or self._exit_renderables or not self.is_running:
            return  # quitting: the panes may already be gone
        with self.batch_update():
            self.apply_update(update)

    def pane(self, cls):
        """The main screen's one widget of this class, looked up once (panes are never remounted):
        a DOM query per update per pane was a measurable share of the UI thread under load."""
        widget = self._panes.get(cls)
        if widget is None:
            widget = self._panes[cls] = self.main_query(cls)
        return widget

    @property
    def active_tab(self) -> str:
        return self.pane(TabbedContent).active

    def apply_update(self, update: Update) -> None:
        stream = self.pane(EventStream)
        if self.source is not None and set(self.source.layouts) != set(stream.layouts):
            self.bind_layouts()
        playback = self.replay.playback
        generation = playback.seek_generation if playback is not None else 0
        if playback is not None and update.seek_generation != generation:
            update = replace(update, events={})  # built before the latest seek: its rows are of another time
        if generation != self._seek_generation:  # a seek: what the panes show is from elsewhere in time
            self._seek_generation = generation
            # The seek's first rows are appended right below: one change of the stream's size (a layout
            # of the whole screen per change), none when the screen holds as many rows as before.
            stream.clear(resize=not update.events)
            if self.replay.windows is not None:
                # A timeline's window (or the whole recording) did not move: its counts stay on screen;
                # only the rates taken between frames start over (a cursor move redraws no table).
                self.pane(CpuCounts).forget_rates()
                self.pane(KeyCountsView).rates.reset()
            else:
                self.pane(CpuCounts).reset()
                self.pane(KeyCountsView).reset()
        stream.append(update.events, visible=self.active_tab == "stream")  # hidden: keep the rows, draw nothing
        self.pane(StatusBar).not_shown = stream.window.not_kept
        self.pane(StatusBar).apply(update)
        self.replay.on_update(update)
        self.recording.check()
        if update.damage and not self.banner.endswith(update.damage):  # a damaged recording: said on screen
            self.show_banner(f"{self.banner.split(' Damaged: ')[0]} Damaged: {update.damage}")
        if update.probes:
            states = {s.probe_id: s for s in update.probes}
            if states != self.states:
                self.states = states
                self.show_probes()
                self.editor.probe_states(list(update.probes))
        snapshots = update.snapshots()
        self._latest = snapshots if self._latest is None else Update.merge([self._latest, snapshots])
        now = time.monotonic()
        if now - self._slow_drawn >= 1 / SLOW_PANES_HZ or update.finished:
            self._draw_slow_panes()
        elif not self._slow_pending:
            # Throttled, so drawn at the end of the interval: when updates stop (a paused replay, x after
            # a window), the last one would otherwise never reach the panes.
            self._slow_pending = True
            self.set_timer(max(self._slow_drawn + 1 / SLOW_PANES_HZ - now, 0.0), self._trailing_slow_draw)
        if update.finished:
            self.main_query(StatusBar).set_state(message=update.message or "replay finished")
        self.updates_applied += 1
        self.last_applied = now

    def _trailing_slow_draw(self) -> None:
        self._slow_pending = False
        if self._exit or not self.screen_stack:  # the app is closing (or a test app without screens)
            return
        try:
            self._draw_slow_panes()
        except NoScreen:  # a pane unmounted while the timer waited: the next update draws it
            pass

    def _draw_slow_panes(self) -> None:
        """Counters feed the per-CPU rates whether shown or not (cheap); stacks, histograms and COUNT
        tables are drawn only into the pane on screen (a stacks tree rebuild relays out the screen),
        and the pane a tab switch shows is drawn then."""
        latest = self._latest
        if latest is None:
            return
        self._slow_drawn = time.monotonic()
        names = self._names()
        active = self.active_tab
        if latest.counters:
            failed = {pid: s.reason for pid, s in self.states.items() if s.status == "failed"}
            self.pane(CpuCounts).set_counters(latest.counters, source_seconds(latest), names, failed)
        if latest.stacks and active == "stacks":
            self.pane(Stacks).set_stacks(latest.stacks, names)
            self.pane(FlameView).set_stacks(latest.stacks, names)
        if latest.histograms and active == "hists":
            self.pane(Histograms).set_histograms(latest.histograms, names)
        if latest.counts and active == "cpus":  # counts by cpu are the per-CPU tables: only keyed ones here
            keyed = [kc for kc in latest.counts if kc.key_names != ("cpu",)]
            span = self.replay.counts_span_s()  # a replay's tables are totals over a span: rates over it
            if span is not None:
                self.pane(KeyCountsView).set_counts(keyed, names, span_s=span)
            else:
                self.pane(KeyCountsView).set_counts(keyed, names, source_seconds(latest))
        self._latest = latest.snapshots()

    # --- probes: added, toggled, removed while tracing (the live controller) ----------------
    def show_probes(self) -> None:
        table = self.main_query(ProbeList)
        table.removes_in_place = self.live.control is not None
        if self.mode == "live" and (self.probes or self.source is None):
            table.show(self.live.rows(), self.states)
        elif self.source is not None:
            rows = [(pid, True, lay.name, lay.spec) for pid, lay in sorted(self.source.layouts.items())]
            table.show(rows, self.states)

    def add_probes(self, probes: list[Probe]) -> None:
        self.live.add(probes)
        self.show_probes()

    def toggle_probe(self, probe_id: int) -> None:
        self.live.toggle(probe_id)
        self.show_probes()

    def remove_probe(self, probe_id: int) -> None:
        self.live.remove(probe_id)
        self.show_probes()
        self.editor.probe_states(list(self.states.values()))  # a removed probe's error goes with it

    @on(EntryChosen)
    def _entry_chosen(self, event: EntryChosen) -> None:
        self.editor.entry_chosen(event.entry)

    @on(ProbeSubmitted)
    def _probe_submitted(self, event: ProbeSubmitted) -> None:
        self.add_probes(event.probes)
        self.action_show_tab("stream")  # the user wants to see what the new probe catches

    @on(ProbeToggled)
    def _probe_toggled(self, event: ProbeToggled) -> None:
        self.toggle_probe(event.probe_id)

    @on(ProbeRemoved)
    def _probe_removed(self, event: ProbeRemoved) -> None:
        self.remove_probe(event.probe_id)

    @on(ProbeEditor.ShowCRequested)
    def _show_c(self, event: ProbeEditor.ShowCRequested) -> None:
        self.editor.show_c(event.probes)

    # --- the stream's filter box ---------------------------------------------------------
    @on(EventStream.FollowChanged)
    def _follow_changed(self, event: EventStream.FollowChanged) -> None:
        status = self.main_query(StatusBar)
        status.not_shown = self.main_query(EventStream).window.not_kept
        status.set_state(following=event.follow)
        if event.follow:  # a held replay (after a seek) plays on from the cursor
            self.replay.resume()

    @on(EventStream.PlayPauseRequested)
    def _play_pause(self) -> None:
        self.replay.play_pause()

    @on(EventStream.FilterRequested)
    def _filter_requested(self) -> None:
        box = self.main_query(StreamFilter)
        box.display = True
        focus_now(box)

    @on(EventStream.SearchRequested)
    def _search_requested(self) -> None:
        box = self.main_query(StreamSearch)
        box.display = True
        focus_now(box)

    @on(Input.Submitted, "#stream-search")
    def _stream_search(self, event: Input.Submitted) -> None:
        event.stop()
        stream = self.main_query(EventStream)
        query = event.value.strip()
        if stream.searches_source and query:  # a replay: the first match from the cursor, anywhere in it
            stream.search_query = query
            stream.match_abs = None
            found = bool(self.replay.find(query, 1))
            where = "event of the recording"
        else:
            found = stream.set_search(event.value)
            where = "row"
        self.main_query(StatusBar).set_state(search_text=stream.search_query)
        event.input.display = False  # n / N go on; the status line shows what is searched
        if query and not found:
            self.notify(f"no {where} matches {query!r}", severity="warning", timeout=2)
        focus_now(stream)

    @on(EventStream.FindRequested)
    def _stream_find(self, event: EventStream.FindRequested) -> None:
        self.replay.find_next(event.query, event.step)

    @on(EventStream.FilterChosen)
    def _filter_chosen(self, event: EventStream.FilterChosen) -> None:
        """The inspector's p / c / v: the same filter as typed in the box."""
        self.main_query(StreamFilter).value = event.query  # f shows it, ready to edit
        self.set_stream_filter(event.query)

    @on(Input.Submitted, "#stream-filter")
    def _stream_filter(self, event: Input.Submitted) -> None:
        event.stop()
        self.set_stream_filter(event.value)
        event.input.display = False  # the status line shows the filter in force
        focus_now(self.main_query(EventStream))

    def set_stream_filter(self, query: str) -> None:
        """The stream's filter: of the rows it holds (live), and in a replay of the whole recording,
        read again from the cursor, so FILTER in the status line always means filtered rows."""
        self.main_query(EventStream).set_filter(query)
        self.replay.set_filter(query)
        self.main_query(StatusBar).set_state(filter_text=query.strip())

    # --- actions -------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("cursor", "mark_window", "clear_window", "rate_probe", "jump_mark"):
            return self.mode != "live" and self.replay.windows is not None
        if action in ("pause_replay", "speed", "seek", "step"):
            return self.mode != "live" and self.replay.playback is not None
        if action == "sql":
            return self.sql.available()  # SQL over the open recording: replay only
        if action in ("save_session", "save_session_as", "add_probe", "show_c", "record"):
            return self.mode == "live"  # a replay is read-only: hide what would change it
        if action in ("focus_search", "toggle_browser"):
            return self.mode != "replay"  # nothing can be added to a recording: no probe points to browse
        return True

    async def action_quit(self) -> None:
        self.main_query(StatusBar).set_state(message="stopping: detaching probes…")
        await asyncio.to_thread(self.stop_source)
        self.exit()

    def on_unmount(self) -> None:
        self.sql.close()
        self.stop_source()

    def action_sql(self) -> None:
        self.sql.open()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(binding_rows(self), self.warnings))

    def action_focus_search(self) -> None:
        if not self.main_query("#browser").display:
            self.main_query("#browser").display = True
            self.browser_wanted = True
        focus_now(self.main_query("#symbol-search", Input))

    def pane_focus_target(self, tab: str):
        """The widget that holds the keyboard in each tab: never a text box, so global keys keep working."""
        selector = {"stream": "#event-stream", "cpus": "#cpus-scroll", "stacks": "#stacks-tree",
                    "hists": "#hists-scroll", "probes": "#probe-list"}.get(tab, "#event-stream")
        return self.pane(TabbedContent).query_one(selector)

    def action_show_tab(self, tab: str) -> None:
        # Focus moves to the new pane's widget at once: left to Textual, focus falls back to a sibling
        # in the hidden pane (the stream's search box), which switches the tab back and eats keys.
        self.pane(TabbedContent).active = tab
        focus_now(self.pane_focus_target(tab))
        self._pane_shown(tab)

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id != self._shown_tab:  # a click on a tab (keys already drew it)
            self._pane_shown(event.pane.id or "")

    def _pane_shown(self, tab: str) -> None:
        """A pane came on screen: draw what it missed while hidden."""
        self._shown_tab = tab
        if tab == "stream":
            self.pane(EventStream).catch_up()
        self._draw_slow_panes()

    def action_add_probe(self) -> None:
        if self.mode != "live":
            self.notify("Replay is read-only: probes cannot be added.", severity="warning")
            return
        self.main_query(ProbeEditor).action_add_probe()

    def action_show_c(self) -> None:
        self.main_query(ProbeEditor).action_show_c()

    def action_leave_input(self) -> None:
        """Escape leaves a text box without changing anything it applies: the stream's filter and search
        boxes go back to what is in force (and hide; the status line says what is), any other box keeps
        its text; the keyboard goes to the active pane's widget."""
        focused = self.focused
        if not isinstance(focused, Input):
            return
        if focused.id == "stream-filter":
            focused.value = self.main_query(StatusBar).filter_text
            focused.display = False
        elif focused.id == "stream-search":
            focused.value = self.main_query(EventStream).search_query
            focused.display = False
        focus_now(self.pane_focus_target(self.main_query(TabbedContent).active or "stream"))

    def action_toggle_browser(self) -> None:
        browser = self.main_query("#browser")
        browser.display = not browser.display
        self.browser_wanted = bool(browser.display)  # the user's choice holds across resizes

    def action_pause_replay(self) -> None:
        self.replay.toggle_pause()

    def action_seek(self, seconds: float) -> None:
        self.replay.seek(seconds)

    def action_cursor(self, columns: int) -> None:
        self.replay.move_cursor(columns)

    def action_mark_window(self) -> None:
        self.replay.mark()

    def action_jump_mark(self, step: int) -> None:
        self.replay.jump_mark(step)

    def action_clear_window(self) -> None:
        self.replay.select(None, None)

    def action_flame(self) -> None:
        """g: the stacks as a flame graph (on the Stacks tab), or back to the tree."""
        flame, tree = self.pane(FlameView), self.pane(Stacks)
        if self.active_tab != "stacks":  # from another tab: go to the stacks, as a flame graph
            self.pane(TabbedContent).active = "stacks"
            flame.display = False
        flame.display = not flame.display
        tree.display = not flame.display
        if flame.display and self._latest is not None:
            flame.set_stacks(self._latest.stacks, self._names())
        (flame.query_one(FlameGraph) if flame.display else tree).focus()

    def action_rate_probe(self) -> None:
        self.replay.cycle_rate_probe()

    @on(Timeline.CursorMoved)
    def _timeline_cursor(self, event: Timeline.CursorMoved) -> None:
        self.replay.seek_to(event.t_ns)

    @on(Timeline.WindowSelected)
    def _timeline_window(self, event: Timeline.WindowSelected) -> None:
        self.replay.select(event.start_ns, event.end_ns)

    def action_step(self) -> None:
        self.replay.step()

    def action_speed(self, factor: float) -> None:
        self.replay.change_speed(factor)

    def action_save_session(self) -> None:
        self.sessions.save()

    def action_save_session_as(self) -> None:
        self.sessions.save_as()

    def action_record(self) -> None:
        self.recording.toggle()

    def get_system_commands(self, screen):
        yield from super().get_system_commands(screen)
        seen = set()
        # Each entry's second line says what a user can use: its key and where that key works (the
        # binding id, for remapping, is in the help screen's wide layout).
        owners = [(self, self.BINDINGS, "anywhere"), ("#event-stream", EventStream.BINDINGS, "in the stream (tab 1)"),
                  ("#probe-list", ProbeList.BINDINGS, "in the probe list (tab 5)"),
                  ("#browser", SymbolBrowser.BINDINGS, "in the search panel (/)")]
        for owner, bindings, where in owners:
            node = owner if owner is self else self.main_query(owner)
            for b in bindings:
                if not isinstance(b, Binding) or not b.description or b.action in seen or b.action == "quit":
                    continue
                if not available(node, b.action):  # only what this mode can do (no replay keys live)
                    continue
                seen.add(b.action)
                key = self.get_key_display(b)
                yield SystemCommand(f"{b.description} ({key})", f"key {key}, {where}", self._palette_runner(b.action))
        yield from self._recipe_commands()

    def _recipe_commands(self):
        """The classic BCC tools as probes (ktui.probes.recipes): live only, nothing is added to a replay."""
        from ktui.probes.recipes import RECIPES

        if self.mode != "live":
            return
        for r in RECIPES:
            yield SystemCommand(f"Recipe: {r.name} - {r.summary}",
                                "adds its probes (open them in the Probes tab); says which mechanism this kernel "
                                "offers", self._recipe_runner(r.name))

    def _recipe_runner(self, name: str) -> Callable[[], None]:
        def run() -> None:
            self.open_recipe(name)
        return run

    def open_recipe(self, name: str) -> None:
        from ktui.probes.recipes import Capabilities, choose, recipe

        chosen = choose(recipe(name), Capabilities.of_this_kernel())
        if not chosen.probes:
            self.notify(chosen.reason, severity="warning", timeout=8)
            return
        self.add_probes(chosen.probes)
        self.action_show_tab("probes")
        note = f" {chosen.recipe.note}" if chosen.recipe.note and chosen.skipped else ""
        self.notify(chosen.reason + note, timeout=10)

    def _palette_runner(self, action: str) -> Callable[[], None]:
        def run() -> None:
            target = {"toggle_follow": "#event-stream", "filter": "#event-stream", "search": "#event-stream",
                      "find": "#event-stream",
                      "clear": "#event-stream", "toggle": "#probe-list", "remove": "#probe-list",
                      "cycle_mode": "#browser"}
            name = action.split("(")[0]
            if name in target:
                self.call_later(self.run_action, action, self.main_query(target[name]))
            else:
                self.call_later(self.run_action, action)
        return run
