"""The symbol browser: a search box over the whole catalog, a virtualized result list
and a detail view of the highlighted entry.

The list keeps only row numbers into the catalog and renders the lines on screen
(never a widget or a DataTable row per symbol): 122k entries cost one int each.
Searches run in a thread worker; the newest query cancels the previous one.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.cache import LRUCache
from textual.containers import Vertical
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Static
from textual.timer import Timer
from textual.worker import get_current_worker

from ktui.starting_points import is_plain_word, starting_rows
from ktui.widgets.focus import focus_now
from ktui.widgets.messages import EntryChosen
from ktui.textsafe import term_safe

SEARCH_DELAY = 0.12  # seconds of no typing before the catalog is searched
MODES = ("auto", "glob", "regex", "fuzzy")  # auto: a plain word is ranked fuzzy, a pattern is a glob
KIND_MARK = {"kprobe": ("k", "cyan"), "tracepoint": ("t", "green"), "rawtracepoint": ("r", "blue"),
             "uprobe": ("u", "magenta"), "usdt": ("U", "magenta"), "software": ("s", "blue"),
             "hardware": ("h", "blue")}
# One glyph per traceability so the list says at a glance what can be probed.
TRACE_MARK = {"traceable": (" ", ""), "blacklisted": ("✗", "red"), "notrace": ("✗", "red"),
              "inlined": ("i", "yellow"), "clone": ("c", "yellow"), "duplicate": ("d", "yellow"),
              "init": ("✗", "red"), "unknown": ("?", "dim")}
LEGEND = "k kprobe  t tracepoint  r raw tp  u uprobe │ ✗ untraceable  i inlined  c clones  d duplicate  ? unknown"


def entry_line(entry) -> Text:
    kind, kind_style = KIND_MARK.get(entry.kind, ("?", ""))
    mark, mark_style = TRACE_MARK.get(entry.traceability, ("?", "dim"))
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(kind, kind_style)
    line.append(mark, mark_style)
    line.append(" ")
    line.append(term_safe(entry.name.split(":", 1)[1] if ":" in entry.name else entry.name),
                "dim" if mark_style == "red" else "")
    if entry.clones:
        line.append(f" +{len(entry.clones)} clones", "yellow")
    if entry.module:
        line.append(f" [{term_safe(entry.module)}]", "dim")
    return line


class SymbolList(ScrollView, can_focus=True):
    """Row numbers into the catalog, one line each, with a cursor."""

    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter", "choose", "Probe it", id="browser.choose"),
    ]

    cursor: reactive[int] = reactive(0)

    class Highlighted(Message):
        def __init__(self, entry) -> None:
            super().__init__()
            self.entry = entry

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.catalog = None
        self.rows: Sequence[int] = ()
        self._strips: LRUCache[tuple[int, int, bool], Strip] = LRUCache(512)

    def set_rows(self, catalog, rows: Sequence[int]) -> None:
        self.catalog = catalog
        self.rows = rows
        self._strips.clear()
        self.virtual_size = Size(self.size.width, len(rows))
        self.cursor = 0
        self.scroll_to(0, 0, animate=False, immediate=True)
        self.refresh()
        self._announce()

    @property
    def entry(self):
        if self.catalog is None or not (0 <= self.cursor < len(self.rows)):
            return None
        return self.catalog.entry(self.rows[self.cursor])

    def watch_cursor(self, old: int, new: int) -> None:
        if not self.is_mounted:
            return
        self._strips.clear()
        if new < self.scroll_offset.y:
            self.scroll_to(y=new, animate=False, immediate=True)
        elif new >= self.scroll_offset.y + self.size.height:
            self.scroll_to(y=new - self.size.height + 1, animate=False, immediate=True)
        self.refresh()
        self._announce()

    def _announce(self) -> None:
        self.post_message(self.Highlighted(self.entry))

    def action_cursor(self, delta: int) -> None:
        if self.rows:
            self.cursor = max(0, min(len(self.rows) - 1, self.cursor + delta))

    def action_page(self, direction: int) -> None:
        self.action_cursor(direction * max(1, self.size.height - 1))

    def action_jump(self, where: int) -> None:
        if self.rows:
            self.cursor = where % len(self.rows)

    def action_choose(self) -> None:
        if self.entry is not None:
            self.post_message(EntryChosen(self.entry))

    def on_click(self, event) -> None:
        row = self.scroll_offset.y + event.y
        if 0 <= row < len(self.rows):
            self.cursor = row

    def on_resize(self) -> None:
        self._strips.clear()
        self.virtual_size = Size(self.size.width, len(self.rows))

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def render_line(self, y: int) -> Strip:
        index = self.scroll_offset.y + y
        width = self.scrollable_content_region.width  # the scrollbar's gutter must not hide the "…"
        if self.catalog is None or index >= len(self.rows):
            return Strip.blank(width, self.rich_style)
        selected = index == self.cursor
        key = (index, width, selected and self.has_focus)
        strip = self._strips.get(key)
        if strip is None:
            line = entry_line(self.catalog.entry(self.rows[index]))
            if selected:
                line.stylize("reverse" if self.has_focus else "underline")
            line.truncate(width, overflow="ellipsis")
            strip = Strip(list(line.render(self.app.console))).extend_cell_length(width, self.rich_style)
            self._strips[key] = strip
        return strip

    def on_focus(self) -> None:
        self._strips.clear()
        self.refresh()

    def on_blur(self) -> None:
        self._strips.clear()
        self.refresh()


def entry_detail(entry) -> Text:
    """Signature, arguments with types, source, traceability and clones of one entry."""
    if entry is None:
        return Text("Nothing highlighted.", style="dim")
    t = Text()
    t.append(term_safe(entry.name), "bold")
    t.append("\n")
    try:
        args, ret, source, note = entry.args, entry.return_type, entry.source, entry.args_note
    except Exception as err:  # details come from BTF/DWARF files that may be unreadable
        args, ret, source, note = [], None, None, f"details unavailable: {err}"
    if entry.kind == "tracepoint":
        t.append("fields: ", "dim")
        t.append(term_safe(", ".join(str(a) for a in args)) or "(none)")
    elif entry.kind in ("software", "hardware"):
        pass  # a perf event has no arguments: its note says what it counts
    else:
        t.append(term_safe(f"{ret or '?'} {entry.symbol}("), "cyan")
        t.append(term_safe(", ".join(str(a) for a in args)), "cyan")
        t.append(")", "cyan")
    if note:
        t.append(f"\n{term_safe(note)}", "dim italic")
    if source:
        t.append(f"\nsource: {term_safe(source)}", "dim")
    if entry.address:
        t.append(f"\naddress: {entry.address:#x}", "dim")
        if entry.module:
            t.append(f" in {term_safe(entry.module)}", "dim")
    style = "green" if entry.traceability == "traceable" else "yellow"
    t.append(f"\n{term_safe(entry.traceability)}", style)
    if entry.traceability_reason:
        t.append(f": {term_safe(entry.traceability_reason)}", "dim")
    if entry.clones:
        t.append(f"\nclones: {term_safe(', '.join(entry.clones[:6]))}", "yellow")
    if len(entry.addresses) > 1:
        t.append(f"\n{len(entry.addresses)} addresses: a probe by name is ambiguous", "yellow")
    return t


class SymbolBrowser(Vertical):
    """Search box, result count, list and detail. Posts EntryChosen on Enter."""

    BINDINGS = [
        Binding("f2", "cycle_mode", "Search mode", id="browser.mode"),
        Binding("down", "focus_list", "To list", show=False),
    ]

    mode: reactive[str] = reactive("auto")

    class Results(Message):
        def __init__(self, query: str, rows: Sequence[int], error: str = "", how: str = "") -> None:
            super().__init__()
            self.query = query
            self.rows = rows
            self.error = error
            self.how = how  # what the count line says about the ranking

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.catalog = None
        self.state = "loading"  # "loading", "ready", "error"
        self._search_timer: Timer | None = None
        # Enter pressed before the catalog was loaded: the query it was pressed on. The first match of
        # that query is chosen when its results arrive (a key typed early is kept, not dropped).
        self._enter_pending: str | None = None

    def compose(self):
        yield Input(placeholder="search symbols (auto)", id="symbol-search")
        yield Static("Loading the catalog…", id="symbol-count", markup=False)
        yield SymbolList(id="symbol-list")
        yield Static("", id="symbol-detail", markup=False)

    @property
    def enter_pending(self) -> bool:
        """Enter was pressed before the catalog was loaded: keys typed after it wait for the editor."""
        return self._enter_pending is not None

    # --- state from the app ----------------------------------------------------
    def show_loading(self, text: str = "Loading the catalog…") -> None:
        self.state = "loading"
        self.query_one("#symbol-count", Static).update(term_safe(text))

    def set_error(self, sentence: str) -> None:
        self.state = "error"
        self._enter_pending = None
        self.query_one("#symbol-count", Static).update(Text(term_safe(sentence), style="bold red"))
        self.query_one("#symbol-detail", Static).update(
            Text("You can still type a probe by hand in the Probes tab.", style="dim"))

    def set_catalog(self, catalog) -> None:
        self.catalog = catalog
        self.state = "ready"
        self.search(self.query_one("#symbol-search", Input).value)

    # --- searching -------------------------------------------------------------
    def watch_mode(self, mode: str) -> None:
        if self.is_mounted:
            self.query_one("#symbol-search", Input).placeholder = f"search symbols ({mode})"
            self.search(self.query_one("#symbol-search", Input).value)

    def action_cycle_mode(self) -> None:
        self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)]

    def action_focus_list(self) -> None:
        focus_now(self.query_one(SymbolList))

    @on(Input.Changed, "#symbol-search")
    def _typed(self, event: Input.Changed) -> None:
        """Search when typing pauses (SEARCH_DELAY): a word typed or pasted at once is one search, not
        one per key (a thread per key starves the UI of the GIL on a busy machine)."""
        event.stop()
        if self._enter_pending is not None and event.value.strip() != self._enter_pending:
            self._enter_pending = None  # typing on after an early Enter: that Enter meant the old text
        if self._search_timer is not None:
            self._search_timer.stop()
        value = event.value

        def run() -> None:
            self._search_timer = None
            self.search(value)
        self._search_timer = self.set_timer(SEARCH_DELAY, run)

    @on(Input.Submitted, "#symbol-search")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self._search_timer is not None and self.catalog is not None:
            # Enter right after typing: the debounced search has not run yet; run it now so Enter
            # picks the first match of what was typed, never an entry of the previous list.
            self._search_timer.stop()
            self._search_timer = None
            try:
                rows, how = self.find_rows(self.catalog, event.value, self.mode)
            except Exception:  # a bad pattern: the search says why when it runs
                rows, how = (), self.mode
            self._results(self.Results(event.value.strip(), rows, how=how))
        if self.catalog is None:  # still loading: choose when the results for this query arrive
            self._enter_pending = event.value.strip()
            if self.state == "loading":
                self.show_loading("Loading the catalog… (Enter will open the first match)")
            return
        entry = self.query_one(SymbolList).entry
        if entry is not None:  # posted here, not on the list: a message sent to a child stops at its sender
            self.post_message(EntryChosen(entry))

    def search(self, query: str) -> None:
        if self.catalog is None:
            return
        self._search(self.catalog, query, self.mode)

    @staticmethod
    def find_rows(catalog, query: str, mode: str) -> tuple[Sequence[int], str]:
        """The rows for ``query`` in ``mode`` and what the count line says about their order."""
        query = query.strip()
        how = mode
        if not query:  # where investigations start first, then everything by name
            rows, popular = starting_rows(catalog)
            return rows, ("common first" if popular else "by name")
        if mode == "auto":  # one or two letters rank nothing useful: a substring search then
            mode = "fuzzy" if is_plain_word(query) and len(query) >= 3 else "glob"
            how = f"auto: {mode}"
        pattern = query
        if mode == "glob" and not any(c in query for c in "*?[{"):
            pattern = f"*{query}*"  # a plain word finds names containing it
        elif mode == "glob" and ":" not in query:
            pattern = f"*:{query}"  # no provider given: any provider
        return catalog.search_indices(pattern, mode=mode, limit=None if mode != "fuzzy" else 500), how

    @work(thread=True, exclusive=True, group="symbol-search", exit_on_error=False)
    def _search(self, catalog, query: str, mode: str) -> None:
        query = query.strip()
        try:
            rows, how = self.find_rows(catalog, query, mode)
        except Exception as err:  # UsageError for a bad pattern; anything else is shown, not raised
            if get_current_worker().is_cancelled:
                return
            self.post_message(self.Results(query, (), str(err)))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(self.Results(query, rows, how=how))

    @on(Results)
    def _results(self, event: Results) -> None:
        event.stop()
        count = self.query_one("#symbol-count", Static)
        if event.error:
            count.update(Text(term_safe(event.error), style="bold red"))
            self._enter_pending = None  # nothing to open: the keys after that Enter go on
            return
        total = len(self.catalog) if self.catalog is not None else 0
        count.update(Text(f"{len(event.rows):,} of {total:,} ({event.how or self.mode})", style="dim"))
        self.query_one(SymbolList).set_rows(self.catalog, event.rows)
        if self._enter_pending is not None and self._enter_pending == event.query:
            self._enter_pending = None
            entry = self.query_one(SymbolList).entry
            if entry is not None:
                self.post_message(EntryChosen(entry))

    @on(SymbolList.Highlighted)
    def _highlighted(self, event: SymbolList.Highlighted) -> None:
        event.stop()
        self.query_one("#symbol-detail", Static).update(entry_detail(event.entry))
