"""`ktui diff A B --view`: the comparison in a scrollable screen (the same text as the command prints,
laid out again for the terminal's width; changes beyond noise in colour).

The comparison is ktui/diff (core); this only shows it. Keys: arrows/PgUp/PgDn scroll, `a` shows
every probe and histogram (also those within noise), `g` switches to the differential flame graph
and back (in it: arrows, enter zooms, backspace goes back, s searches; Escape leaves it), `q` or
Escape quits.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from ktui.diff.compare import RecordingDiff
from ktui.diff.text import render
from ktui.widgets.diff_flame import DiffFlameView
from ktui.widgets.flame import FlameGraph
from ktui.widgets.key_queue import KeyQueue


def styled(line: str) -> Text:
    """One line of the diff with its meaning in colour: flagged lines bold, growth red, shrinkage blue."""
    text = Text(line)
    if line.startswith("!"):
        text.stylize("bold")
    for word, style in ((" new ", "red"), (" grew ", "red"), (" gone ", "blue"), (" shrank ", "blue")):
        start = line.find(word)
        if start >= 0:
            text.stylize(style, start, start + len(word))
    if line.startswith(("  PROBE", "  STACKS", "  FLAME", "! HISTOGRAM", "  HISTOGRAM")):
        text.stylize("bold")
    return text


class DiffApp(App[None]):
    TITLE = "ktui diff"
    BINDINGS = [Binding("q", "quit", "Quit"), Binding("escape", "leave", "Back/Quit"),
                Binding("a", "toggle_all", "All probes"), Binding("g", "flame", "Flame graph")]

    def __init__(self, diff: RecordingDiff) -> None:
        super().__init__()
        self.diff = diff
        self.all_probes = False
        # Keys one at a time, as in the main app: "s" then a search typed straight on all reach the box.
        self.keys = KeyQueue(lambda: self.focused or self.screen, lambda event: App.on_event(self, event),
                             screen=lambda: self.screen if self.screen_stack else None)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded:  # from the terminal: one at a time
            self.keys.put(event)
            return
        await super().on_event(event)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="diff-body"):
            yield Static(id="diff-text", markup=False)
        yield DiffFlameView(id="diff-flame")
        yield Footer()

    def on_mount(self) -> None:
        self._draw()
        self.query_one(DiffFlameView).set_diff(self.diff.flame)
        self.query_one("#diff-body").focus()

    def action_flame(self) -> None:
        """g: the differential flame graph in place of the text, or the text again."""
        flame = self.query_one(DiffFlameView)
        flame.display = not flame.display
        body = self.query_one("#diff-body")
        body.display = not flame.display
        (flame.query_one(FlameGraph) if flame.display else body).focus()

    def action_leave(self) -> None:
        """Escape: out of the flame graph back to the text; from the text, quit."""
        if self.query_one(DiffFlameView).display:
            self.action_flame()
        else:
            self.exit()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        width = max(60, self.size.width - 2)
        lines = render(self.diff, width, all_probes=self.all_probes, max_stacks=20, max_flame=40, all_hint="a")
        text = Text("\n").join(styled(line) for line in lines)
        self.query_one("#diff-text", Static).update(text)

    def action_toggle_all(self) -> None:
        self.all_probes = not self.all_probes
        self._draw()
