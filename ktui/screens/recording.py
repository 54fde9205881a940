"""Recording what the app shows: a key (and the palette) starts a recording of the running probes
into a file the user names, and stops it; the status line carries a marker while it runs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from ktui.errors import KtuiError
from ktui.events import Recordable
from ktui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from ktui.app import KtuiApp


def default_path() -> str:
    return str(Path.cwd() / time.strftime("ktui-%Y%m%d-%H%M%S.ktrec"))


class RecordPathScreen(ModalScreen[str | None]):
    """Asks where to write the recording; Enter starts, Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="record.cancel")]
    DEFAULT_CSS = """
    RecordPathScreen { align: center middle; }
    RecordPathScreen > Vertical { width: 70; height: auto; border: round $accent; padding: 0 1;
                                  background: $surface; }
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Record the running probes to (Enter starts, Escape cancels):", markup=False)
            yield Input(self.path, id="record-path")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class RecordingController:
    def __init__(self, app: KtuiApp) -> None:
        self.app = app
        self.path: str | None = None  # while a recording runs

    @property
    def recordable(self) -> Recordable | None:
        source = self.app.source
        return source if isinstance(source, Recordable) else None

    def toggle(self) -> None:
        if self.path is not None:
            self.stop()
            return
        if self.recordable is None:
            self.app.notify("Only live tracing can be recorded (a replay is a recording already).",
                            severity="warning")
            return
        self.app.push_screen(RecordPathScreen(default_path()), self._chosen)

    def _chosen(self, path: str | None) -> None:
        source = self.recordable
        if not path or source is None:
            return

        def start() -> None:
            try:
                source.start_recording(path)
            except KtuiError as err:
                self.app.call_from_thread(self.app.notify, f"Not recording: {err}", severity="error")
                return
            self.app.call_from_thread(self._show, path)
        self.app.run_worker(start, thread=True, group="recording", exit_on_error=False)

    def stop(self) -> None:
        source = self.recordable
        if source is None:
            self._show(None)
            return

        def stop() -> None:
            try:
                sentence = source.stop_recording()
            except KtuiError as err:
                sentence = str(err)
            self.app.call_from_thread(self._stopped, sentence)
        self.app.run_worker(stop, thread=True, group="recording", exit_on_error=False)

    def _stopped(self, sentence: str) -> None:
        self._show(None)
        self.app.notify(sentence)
        self.app.main_query(StatusBar).set_state(message=sentence)

    def _show(self, path: str | None) -> None:
        self.path = path
        self.app.main_query(StatusBar).set_state(recording=path or "")

    def check(self) -> None:
        """After each update: a recording that failed on its own (a full disk) loses its marker;
        the source's message says why."""
        source = self.recordable
        if self.path is not None and (source is None or source.recording_path is None):
            self._show(None)
