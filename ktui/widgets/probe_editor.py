"""The probe editor: from a catalog entry (or typed or pasted text) build probes.

Where (entry, return, both with latency), which arguments to record, a filter
checked as you type, and what to do with each hit. Errors are shown under the
field that caused them; the app compiles and attaches.
"""

from __future__ import annotations

from rich.text import Text
from textual import events, on
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, SelectionList, Static

from ktui.errors import KtuiError, ParseError
from ktui.probes.draft import ProbeDraft, where_applies
from ktui.probes.model import Probe
from ktui.probes.resolve import PointNames
from ktui.textsafe import term_safe
from ktui.widgets.messages import ProbeSubmitted
from ktui.widgets.toggles import Choice, Tick, TickList


class _OneEntry:
    """The catalog entry the editor was given, answering lookups of its own name only."""

    def __init__(self, entry) -> None:
        self.entry = entry

    def lookup(self, name: str):
        return self.entry if name == self.entry.name else None


class ProbeEditor(VerticalScroll):
    """Fields for one probe draft (ktui.probes.draft); posts ProbeSubmitted with the probes
    the draft builds. It holds no rule of its own: names, types, where, count keys and
    their checks all come from the core."""

    # Its keys (ctrl+n add, ctrl+g show C) are app bindings, so they work from the probe list too.

    class ShowCRequested(Message):
        def __init__(self, probes: list[Probe]) -> None:
            super().__init__()
            self.probes = probes

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.entry = None  # the catalog entry the spec came from, if any
        self.catalog = None  # the symbol catalog, once the app has loaded it
        self.names = PointNames()  # what the current spec offers by name (from ktui.probes.resolve)
        self.expanded: set[str] = set()  # struct-pointer arguments whose members the picker shows
        self.members_ticked: set[str] = set()  # members ticked (skb->len), kept while their argument is folded

    def compose(self):
        yield Label("Probe point (bpftrace name, kprobe_events line or SystemTap point):")
        yield Input(placeholder="tracepoint:syscalls:sys_enter_getppid", id="editor-spec")
        yield Static("", id="editor-spec-error", markup=False, classes="field-error")
        with Horizontal(id="editor-where-row"):
            with RadioSet(id="editor-where"):
                yield Choice("entry", value=True, id="where-entry")
                yield Choice("return", id="where-return")
                yield Choice("both+latency", id="where-both")
            with VerticalScroll(id="editor-actions"):
                yield Tick("stream events", value=True, id="act-stream")
                yield Tick("count per key", value=True, id="act-count")
                yield Tick("kernel stacks", id="act-stacks")
                yield Tick("histogram", id="act-hist")
        with Horizontal(id="editor-count-row"):
            yield Label("Count key:", id="editor-count-label")
            yield Input(value="cpu", placeholder="cpu, or e.g. pid,comm (builtins or arguments)", id="editor-count-key")
        yield Static("", id="editor-count-error", markup=False, classes="field-error")
        yield Label("Arguments / fields to record (none ticked: all of them):")
        yield TickList[str](id="editor-args")
        yield Label("Filter (e.g. pid == 1234 && comm == \"bash\"):")
        yield Input(placeholder="keep every event", id="editor-filter")
        yield Static("", id="editor-filter-error", markup=False, classes="field-error")
        with Horizontal(id="editor-buttons"):
            yield Button("Add probe (ctrl+n)", id="editor-add", variant="primary")
            yield Button("Show C (ctrl+g)", id="editor-show-c")

    # --- the draft ------------------------------------------------------------------
    def _lookup(self):
        """The catalog names are resolved against: the app's, else the chosen entry alone."""
        if self.catalog is not None:
            return self.catalog
        return _OneEntry(self.entry) if self.entry is not None else None

    def draft(self) -> ProbeDraft:
        """What the fields say, as the core's draft."""
        checks = {k: self.query_one(f"#act-{k}", Checkbox).value for k in ("stream", "count", "stacks", "hist")}
        return ProbeDraft(
            spec=self.query_one("#editor-spec", Input).value,
            where=self.where,
            ticked=self._ticked(),
            filter=self.query_one("#editor-filter", Input).value,
            count_key=self.query_one("#editor-count-key", Input).value,
            **checks,
        )

    def _ticked(self) -> tuple[str, ...]:
        box = self.query_one("#editor-args", SelectionList)
        shown = {box.get_option_at_index(i).value for i in range(box.option_count)}
        return tuple(box.selected) + tuple(sorted(m for m in self.members_ticked if m not in shown))

    def _reset(self, draft: ProbeDraft | None = None) -> None:
        """A new probe starts clean: nothing of the previous one carries over (the core's defaults)."""
        draft = draft or ProbeDraft()
        self.query_one("#editor-filter", Input).value = draft.filter
        self.query_one("#editor-count-key", Input).value = draft.count_key
        self.query_one("#where-entry", RadioButton).value = True
        self.query_one("#editor-args", SelectionList).deselect_all()
        self.expanded.clear()
        self.members_ticked.clear()
        for key in ("stream", "count", "stacks", "hist"):
            self.query_one(f"#act-{key}", Checkbox).value = getattr(draft, key)
        for field in ("spec", "filter", "count"):
            self.query_one(f"#editor-{field}-error", Static).update("")

    def _refresh_names(self) -> None:
        """Ask the core what the spec offers; list it and enable what applies."""
        draft = self.draft()
        self.names = draft.names(self._lookup())
        box = self.query_one("#editor-args", SelectionList)
        ticked = set(self._ticked())
        # members of an argument the point still has (a new spec drops the others)
        self.members_ticked = {t for t in ticked if "->" in t and self.expandable(t.split("->", 1)[0])}
        self.expanded = {e for e in self.expanded if self.expandable(e)}
        box.clear_options()
        for a in self.names.fetchable():
            label = Text(term_safe(str(a)))
            if self.expandable(a.name):
                label.append(" ▾" if a.name in self.expanded else " ▸", style="dim")
                hidden = [m for m in self.members_ticked if m.startswith(a.name + "->")]
                if hidden and a.name not in self.expanded:
                    label.append(term_safe(f" ({', '.join(sorted(hidden))})"), style="dim")
            box.add_option((label, a.name, a.name in ticked))
            if a.name in self.expanded:  # the member picker: one level of the struct (BTF or DWARF)
                for ref in ProbeDraft.members(self.names, a.name):
                    box.add_option((Text("   " + term_safe(f"{ref.ctype} {ref.text}")), ref.text, ref.text in ticked))
        try:
            probes = draft.parsed(self._lookup())
        except KtuiError:
            probes = []
        # a hand-typed uprobe or kprobe gets its entry/return choice back after a tracepoint
        self.query_one("#editor-where", RadioSet).disabled = bool(probes) and not where_applies(probes[0].kind)

    # --- the member picker ----------------------------------------------------------
    def expandable(self, name: str) -> bool:
        """A pointer to a struct whose layout is known here (the core decides): its members can be
        picked (right arrow opens, left closes)."""
        return self.names.expandable(name)

    def toggle_members(self, name: str, show: bool) -> None:
        if not self.expandable(name) or (name in self.expanded) == show:
            return
        (self.expanded.add if show else self.expanded.discard)(name)
        self._refresh_names()

    def on_key(self, event: events.Key) -> None:
        box = self.query_one("#editor-args", SelectionList)
        if event.key not in ("right", "left") or not box.has_focus or box.highlighted is None:
            return
        value = str(box.get_option_at_index(box.highlighted).value)
        base = value.split("->", 1)[0]
        event.stop()
        self.toggle_members(base, event.key == "right")
        for i in range(box.option_count):  # keep the cursor on the argument
            if box.get_option_at_index(i).value == base:
                box.highlighted = i
                break

    # --- filled from the browser ------------------------------------------------
    def load_entry(self, entry) -> None:
        self.entry = entry
        self._reset()
        self.query_one("#editor-spec", Input).value = term_safe(entry.name)
        self.query_one("#editor-args", SelectionList).clear_options()
        self._refresh_names()
        self.query_one("#editor-where", RadioSet).disabled = not where_applies(entry.kind)

    # --- validation as you type --------------------------------------------------
    def filter_names(self) -> dict[str, str]:
        return self.names.filter_names()

    @on(Input.Changed, "#editor-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.validate_filter()

    def validate_filter(self) -> bool:
        draft = self.draft()
        out = self.query_one("#editor-filter-error", Static)
        try:
            draft.check_filter(self.names)
        except ParseError as err:
            out.update(Text(term_safe(f"{err.caret()}\n{err}", multiline=True), style="bold red") if err.pos is not None
                       else Text(term_safe(err), style="bold red"))
            return False
        except KtuiError as err:
            out.update(Text(term_safe(err), style="bold red"))
            return False
        out.update(Text("✓ filter ok", style="green") if draft.filter.strip() else "")
        return True

    @on(Input.Changed, "#editor-spec")
    def _spec_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self.entry is not None and event.value != self.entry.name:
            self.entry = None
        self.query_one("#editor-spec-error", Static).update("")
        self._refresh_names()
        if self.query_one("#editor-filter", Input).value:
            self.validate_filter()

    @on(RadioSet.Changed, "#editor-where")
    def _where_changed(self, event: RadioSet.Changed) -> None:
        event.stop()
        self._refresh_names()  # retval and latency come and go with the return side
        if self.query_one("#editor-filter", Input).value:
            self.validate_filter()

    @on(Input.Changed, "#editor-count-key")
    def _count_key_changed(self, event: Input.Changed) -> None:
        event.stop()
        try:
            self.count_key()
        except KtuiError as err:
            self.show_error("count", err.message)
            return
        self.query_one("#editor-count-error", Static).update("")

    def count_key(self, fetched: tuple[str, ...] = ()) -> tuple[str, ...]:
        return self.draft().parsed_count_key(self.names, fetched)

    def show_error(self, field: str, sentence: str) -> None:
        """Put a compile/attach error next to its field ("spec", "filter" or "count")."""
        self.query_one(f"#editor-{field}-error", Static).update(Text(term_safe(sentence, multiline=True), style="bold red"))

    # --- building ------------------------------------------------------------------
    @property
    def where(self) -> str:
        pressed = self.query_one("#editor-where", RadioSet).pressed_button
        return {"where-return": "return", "where-both": "both"}.get((pressed.id if pressed else None) or "", "entry")

    def build(self) -> list[Probe]:
        """The probes the fields describe; raises KtuiError naming the field at fault."""
        probes = self.draft().build(self._lookup())
        for field in ("spec", "filter", "count"):  # this probe is good: earlier errors are gone
            self.query_one(f"#editor-{field}-error", Static).update("")
        return probes

    def action_add_probe(self) -> None:
        try:
            probes = self.build()
        except KtuiError as err:
            self.show_error(err.where if err.where in ("filter", "count") else "spec", err.message)
            return
        self._reset(self.draft().next_probe())
        self.query_one("#editor-spec-error", Static).update(
            Text(term_safe(f"added {', '.join(p.spec for p in probes)}"), style="green"))
        self.post_message(ProbeSubmitted(probes))

    def action_show_c(self) -> None:
        try:
            probes = self.build()
        except KtuiError as err:
            self.show_error(err.where if err.where in ("filter", "count") else "spec", err.message)
            return
        self.post_message(self.ShowCRequested(probes))

    @on(Button.Pressed, "#editor-add")
    def _add_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_add_probe()

    @on(Button.Pressed, "#editor-show-c")
    def _show_c_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_show_c()
