"""The probe editor: from a catalog entry (or typed or pasted text) build probes.

Where (entry, return, both with latency), which arguments to record, a filter
checked as you type, and what to do with each hit. Errors are shown under the
field that caused them; the app compiles and attaches.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, SelectionList, Static

from ktui.errors import KtuiError, ParseError
from ktui.probes.model import (BUILTINS, Action, ActionKind, Arg, Fetch, Probe, ProbeKind, Retval)
from ktui.textsafe import term_safe
from ktui.widgets.messages import ProbeSubmitted

FILTER_BUILTINS = {"comm": "string", "pid": "int", "tid": "int", "uid": "int", "gid": "int", "cpu": "int"}


def _arg_kind(ctype: str) -> str:
    ctype = ctype.replace(" ", "")
    return "string" if ctype.startswith(("char*", "constchar*")) or ctype.startswith("char[") else "int"


class ProbeEditor(VerticalScroll):
    """Fields for one probe; posts ProbeSubmitted with the probes built from them."""

    # Its keys (ctrl+n add, ctrl+g show C) are app bindings, so they work from the probe list too.

    class ShowCRequested(Message):
        def __init__(self, probes: list[Probe]) -> None:
            super().__init__()
            self.probes = probes

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.entry = None  # the catalog entry the spec came from, if any
        self.args: list = []  # catalog Arg(name, ctype) of the entry

    def compose(self):
        yield Label("Probe point (bpftrace name, kprobe_events line or SystemTap point):")
        yield Input(placeholder="tracepoint:syscalls:sys_enter_getppid", id="editor-spec")
        yield Static("", id="editor-spec-error", markup=False, classes="field-error")
        with Horizontal(id="editor-where-row"):
            with RadioSet(id="editor-where"):
                yield RadioButton("entry", value=True, id="where-entry")
                yield RadioButton("return", id="where-return")
                yield RadioButton("both+latency", id="where-both")
            with VerticalScroll(id="editor-actions"):
                yield Checkbox("stream events", value=True, id="act-stream")
                yield Checkbox("count per key", value=True, id="act-count")
                yield Checkbox("kernel stacks", id="act-stacks")
                yield Checkbox("histogram", id="act-hist")
        with Horizontal(id="editor-count-row"):
            yield Label("Count key:", id="editor-count-label")
            yield Input(value="cpu", placeholder="cpu, or e.g. pid,comm (builtins or arguments)", id="editor-count-key")
        yield Static("", id="editor-count-error", markup=False, classes="field-error")
        yield Label("Arguments / fields to record:")
        yield SelectionList[str](id="editor-args")
        yield Label("Filter (e.g. pid == 1234 && comm == \"bash\"):")
        yield Input(placeholder="keep every event", id="editor-filter")
        yield Static("", id="editor-filter-error", markup=False, classes="field-error")
        with Horizontal(id="editor-buttons"):
            yield Button("Add probe (ctrl+n)", id="editor-add", variant="primary")
            yield Button("Show C (ctrl+g)", id="editor-show-c")

    # --- filled from the browser ------------------------------------------------
    def load_entry(self, entry) -> None:
        self.entry = entry
        try:
            self.args = list(entry.args)
        except Exception:  # details unreadable: the probe still works without args
            self.args = []
        self.query_one("#editor-spec", Input).value = term_safe(entry.name)
        self._fill_args()
        is_function = entry.kind in ("kprobe", "uprobe")
        self.query_one("#editor-where", RadioSet).disabled = not is_function
        self.query_one("#editor-spec-error", Static).update("")

    def _fill_args(self) -> None:
        box = self.query_one("#editor-args", SelectionList)
        box.clear_options()
        for a in self.args:
            if a.name and not a.name.startswith("__"):
                box.add_option((Text(term_safe(f"{a.ctype} {a.name}")), a.name))

    # --- validation as you type --------------------------------------------------
    def filter_names(self) -> dict[str, str]:
        names = dict(FILTER_BUILTINS)
        for a in self.args:
            if a.name:
                names[a.name] = _arg_kind(a.ctype)
        if self.where != "entry":
            names["retval"] = "int"
        if self.where == "both":
            names["latency"] = "int"
        return names

    @on(Input.Changed, "#editor-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.validate_filter()

    def validate_filter(self) -> bool:
        text = self.query_one("#editor-filter", Input).value
        out = self.query_one("#editor-filter-error", Static)
        try:
            from ktui.probes.filter import check_filter, parse_filter

            check_filter(parse_filter(text), self.filter_names(), text=text)
        except ParseError as err:
            out.update(Text(term_safe(f"{err.caret()}\n{err}", multiline=True), style="bold red") if err.pos is not None
                       else Text(term_safe(err), style="bold red"))
            return False
        except KtuiError as err:
            out.update(Text(term_safe(err), style="bold red"))
            return False
        out.update(Text("✓ filter ok", style="green") if text.strip() else "")
        return True

    @on(Input.Changed, "#editor-spec")
    def _spec_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self.entry is not None and event.value != self.entry.name:
            self.entry, self.args = None, []
            self._fill_args()
        self.query_one("#editor-spec-error", Static).update("")

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
        """The COUNT action's key: builtins (pid, comm, cpu...) or argument names, comma or space separated.
        ``fetched``: names the probe already records (a pasted kprobe_events line names its own)."""
        text = self.query_one("#editor-count-key", Input).value
        names = tuple(n for n in text.replace(",", " ").split() if n)
        known = [n for n in BUILTINS if n not in ("ts", "kstack", "ustack", "latency", "probe_func")]
        args = [a.name for a in self.args if a.name and not a.name.startswith("__")]
        for n in names:
            if n not in known and n not in args and n not in fetched:
                raise KtuiError(f"count key {n!r} is neither a builtin ({', '.join(known)}) nor an argument"
                                + (f" ({', '.join(args)})" if args else ""), where="count")
        if len(set(names)) != len(names):
            raise KtuiError("a count key names each value once", where="count")
        return names or ("cpu",)

    def show_error(self, field: str, sentence: str) -> None:
        """Put a compile/attach error next to its field ("spec", "filter" or "count")."""
        self.query_one(f"#editor-{field}-error", Static).update(Text(term_safe(sentence, multiline=True), style="bold red"))

    # --- building ------------------------------------------------------------------
    @property
    def where(self) -> str:
        pressed = self.query_one("#editor-where", RadioSet).pressed_button
        return {"where-return": "return", "where-both": "both"}.get(pressed.id if pressed else "", "entry")

    def build(self) -> list[Probe]:
        """The probes the fields describe; raises KtuiError naming the field at fault."""
        spec = self.query_one("#editor-spec", Input).value.strip()
        from ktui.probes.spec import parse_spec

        try:
            probes = parse_spec(spec)
        except KtuiError as err:
            raise KtuiError(str(err), where="spec") from None
        if not self.validate_filter():
            raise KtuiError("the filter does not parse", where="filter")
        filter_text = self.query_one("#editor-filter", Input).value.strip()
        ticked = list(self.query_one("#editor-args", SelectionList).selected)
        checks = {k: self.query_one(f"#act-{k}", Checkbox).value for k in ("stream", "count", "stacks", "hist")}
        where = self.where
        built = []
        for probe in probes:
            if where in ("return", "both") and probe.kind in (ProbeKind.KPROBE, ProbeKind.UPROBE):
                if where == "return":
                    probe.kind = ProbeKind.KRETPROBE if probe.kind is ProbeKind.KPROBE else ProbeKind.URETPROBE
                    probe.name = probe.name + "_ret" if not probe.name.endswith("_ret") else probe.name
                else:
                    probe.latency = True
            if not probe.fetches:
                probe.fetches = [Fetch(name, Arg(name=name)) for name in ticked if name not in BUILTINS]
                if where != "entry" and (probe.kind.is_kernel_function or probe.kind.is_user):
                    probe.fetches.append(Fetch("retval", Retval()))
            if filter_text:
                probe.filter = filter_text
            actions = []
            if checks["stream"]:
                actions.append(Action(ActionKind.STREAM))
            if checks["count"]:
                key = self.count_key(tuple(f.name for f in probe.fetches))
                for name in key:  # an argument counted by must be fetched
                    if name not in BUILTINS and all(f.name != name for f in probe.fetches):
                        probe.fetches.append(Fetch(name, Arg(name=name)))
                actions.append(Action(ActionKind.COUNT, key=key))
            if checks["stacks"]:
                actions.append(Action(ActionKind.STACKS))
            if checks["hist"]:
                value = "latency" if probe.latency else (probe.fetches[0].name if probe.fetches else None)
                if value is None:
                    raise KtuiError("a histogram needs a value: tick an argument or choose both+latency",
                                    where="filter")
                actions.append(Action(ActionKind.HIST, value=value))
            probe.actions = actions or [Action(ActionKind.COUNT, key=("cpu",))]
            built.append(probe)
        return built

    def action_add_probe(self) -> None:
        try:
            probes = self.build()
        except KtuiError as err:
            self.show_error(err.where if err.where in ("filter", "count") else "spec", err.message)
            return
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
