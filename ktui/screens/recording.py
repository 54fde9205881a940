"""Recording what the app shows: a key (and the palette) starts a recording of the running probes
into a file the user names, and stops it; the status line carries a marker while it runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from ktui.errors import KtuiError
from ktui.events import Recordable
from ktui.recording.flight import FlightRecordable, FlightRecorder, FlightSettings
from ktui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from ktui.app import KtuiApp


def default_path() -> str:
    return str(Path.cwd() / time.strftime("ktui-%Y%m%d-%H%M%S.ktrec"))


class RecordPathScreen(ModalScreen[str | None]):
    """Asks where to write the recording and, optionally, for a flight recorder (a ring of seconds
    kept in memory, a trigger, seconds after it, triggers to keep). Enter starts it: the dialog
    stays open with one sentence when the settings or the file are refused. Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="record.cancel")]
    DEFAULT_CSS = """
    RecordPathScreen { align: center middle; }
    RecordPathScreen > Vertical { width: 76; height: auto; border: round $accent; padding: 0 1;
                                  background: $surface; }
    RecordPathScreen Horizontal { height: 1; }
    RecordPathScreen .flight-label { width: 16; }
    RecordPathScreen .flight Input { height: 1; border: none; width: 1fr; padding: 0; }
    RecordPathScreen .flight Input:focus { background: $accent 30%; }
    RecordPathScreen #record-error { color: $error; height: auto; }
    """

    def __init__(self, path: str, start: Callable[[str, FlightSettings | None], None] | None = None) -> None:
        super().__init__()
        self.path = path
        self._start = start  # runs on a worker thread; raises KtuiError when refused
        self._starting = False  # Enter was taken: the recording is starting on a worker

    @property
    def holds_keys(self) -> bool:
        """Keys typed after Enter wait for the answer (ktui.widgets.key_queue.HoldsKeys): the dialog
        closes when the recording has started, or stays with the reason it was refused."""
        return self._starting

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Record the running probes to (Enter starts, Escape cancels):", markup=False)
            yield Input(self.path, id="record-path")
            yield Static("Flight recorder (optional): keep only the windows around a trigger", markup=False)
            for label, name, placeholder in (
                    ("ring seconds", "ring", "e.g. 5 (empty: record everything)"),
                    ("trigger", "trigger", "filter, e.g. ret < 0 && comm == \"cat\""),
                    ("after seconds", "after", "0"),
                    ("keep triggers", "keep", "1")):
                with Horizontal(classes="flight"):
                    yield Static(label, classes="flight-label", markup=False)
                    yield Input(placeholder=placeholder, id=f"record-{name}")
            yield Static("", id="record-error", markup=False)

    def on_mount(self) -> None:
        self.query_one("#record-path", Input).focus()

    def _field(self, name: str) -> str:
        return self.query_one(f"#record-{name}", Input).value

    def show_error(self, sentence: str) -> None:
        self.query_one("#record-error", Static).update(sentence)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        path = self._field("path").strip()
        if not path:
            self.show_error("Name the file to record to.")
            return
        try:
            flight = FlightSettings.from_fields(self._field("trigger"), self._field("ring"), self._field("after"),
                                                self._field("keep"))
        except KtuiError as err:
            self.show_error(str(err))
            return
        if self._start is None:
            self.dismiss(path)
            return
        start = self._start
        self.show_error("")
        self._starting = True

        def run() -> None:
            try:
                start(path, flight)
            except KtuiError as err:
                self.app.call_from_thread(self._refused, f"Not recording: {err}")
                return
            self.app.call_from_thread(self.dismiss, path)
        self.run_worker(run, thread=True, group="recording", exit_on_error=False)

    def _refused(self, sentence: str) -> None:
        self._starting = False
        self.show_error(sentence)

    def action_cancel(self) -> None:
        self.dismiss(None)


class RecordingController:
    def __init__(self, app: KtuiApp) -> None:
        self.app = app
        self.path: str | None = None  # while a recording runs
        self.path_done = ""  # the last recording's file, for the sentence after it stops
        self._flight: FlightRecorder | None = None  # the running recording's flight recorder, if any
        self._status = ""  # its state as last shown
        self._stopping = False

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
        self.app.push_screen(RecordPathScreen(default_path(), self._start), self._chosen)

    def _start(self, path: str, flight: FlightSettings | None) -> None:
        """On the dialog's worker thread: raises KtuiError (shown in the dialog) when refused."""
        source = self.recordable
        if source is None:
            raise KtuiError("tracing stopped: there is nothing to record.")
        if flight is not None:
            if not isinstance(source, FlightRecordable):
                raise KtuiError("this source cannot run a flight recorder.")
            source.start_recording(path, flight)
        else:
            source.start_recording(path)

    def _chosen(self, path: str | None) -> None:
        if path:
            self._show(path)

    def stop(self) -> None:
        source = self.recordable
        if source is None:
            self._show(None)
            return
        if self._stopping:
            return
        self._stopping = True

        def stop() -> None:
            try:
                sentence = source.stop_recording()
            except KtuiError as err:
                sentence = str(err)
            self.app.call_from_thread(self._stopped, sentence)
        self.app.run_worker(stop, thread=True, group="recording", exit_on_error=False)

    def _stopped(self, sentence: str) -> None:
        self._stopping = False
        flight, self._flight = self._flight, None
        if flight is not None:  # the flight's own figures: what was kept of what was seen
            fired = len(flight.marks)
            sentence = (f"Flight recorder: triggered {fired} of {flight.keep}; {flight.events_kept:,} events of "
                        f"{flight.events_seen:,} seen kept in {self.path_done}."
                        if fired else f"Flight recorder: the trigger never fired; {self.path_done} holds no "
                        f"events ({flight.events_seen:,} seen).") + (
                        "" if sentence.endswith(f"recorded to {self.path_done}") else f" {sentence}")
        self._show(None)
        self.app.notify(sentence)
        self.app.main_query(StatusBar).set_state(message=sentence)

    def _show(self, path: str | None) -> None:
        if path is not None:
            self.path_done = path
        self.path = path
        source = self.recordable
        self._flight = source.recording_flight if path and isinstance(source, FlightRecordable) else None
        self._status = self._flight.status if self._flight is not None else ""
        self.app.main_query(StatusBar).set_state(recording=path or "", flight=self._status)

    def check(self) -> None:
        """After each update: a recording that failed on its own (a full disk) loses its marker;
        the source's message says why. A flight recorder completes its windows on its own thread
        (FlightRecorder.poll_in_background: writing one never waits on this screen); its state goes to
        the status line, and when its last trigger's window is written the recording is finished."""
        if self._stopping:  # _stopped says what was written
            return
        source = self.recordable
        if self.path is not None and (source is None or source.recording_path is None):
            self._flight = None
            self._show(None)
            return
        flight = self._flight
        if flight is None or self.path is None:
            return
        if flight.status != self._status:
            self._status = flight.status
            self.app.main_query(StatusBar).set_state(flight=self._status)
        if flight.done.is_set():
            self.stop()
