"""Live mode: the session's probes, keyed by the ids their source hands out, and the source's life.

A source that declares events.ProbeControl changes probes in place: an added probe is shown
as "pending" until the source returns its id, a toggle or removal names the probe by id.
Changes run one at a time on worker threads (a compile takes about a second) and each reads
the state it should apply when it runs, so quick toggles in any order end where the user left
them. A source without ProbeControl is replaced by a new one for the new set (SourceSlot keeps
two from ever running at once).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING
from collections.abc import Callable

from ktui.errors import KtuiError
from ktui.events import EventSource, ProbeControl
from ktui.probes.model import Probe
from ktui.sources.slot import SourceSlot
from ktui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from ktui.app import KtuiApp


STARTING = "starting: compiling and attaching…"  # the status line's message while a source starts


def _sentence(err: Exception, what: str) -> str:
    return str(err) if isinstance(err, KtuiError) else f"{what}: {err}"


class LiveController:
    def __init__(self, app: KtuiApp, probes: list[Probe],
                 factory: Callable[[list[Probe]], EventSource] | None) -> None:
        self.app = app
        self.factory = factory
        self.slot = SourceSlot()
        self.probes: dict[int, Probe] = dict(enumerate(probes))  # re-keyed by the source's ids
        self.adding: list[Probe] = []  # submitted, waiting for the id their source hands out
        self._change_lock = threading.Lock()  # one probe change at a time, in the source's order

    # --- the session's probes -----------------------------------------------------------
    def all_probes(self) -> list[Probe]:
        return [*self.probes.values(), *self.adding]

    def rows(self) -> list[tuple[int | None, bool, str, str]]:
        return [*((pid, p.enabled, p.name, p.spec) for pid, p in self.probes.items()),
                *((None, p.enabled, p.name, p.spec) for p in self.adding)]

    def key_probes(self, probes: list[Probe], source: EventSource | None) -> None:
        """The probes a source was built from, under the ids that source gave them."""
        ids = list(source.probe_ids) if isinstance(source, ProbeControl) else list(range(len(probes)))
        self.probes = dict(zip(ids, probes))

    @property
    def control(self) -> ProbeControl | None:
        source = self.slot.source
        return source if isinstance(source, ProbeControl) else None

    def add(self, probes: list[Probe]) -> None:
        taken = {p.name for p in self.all_probes()}
        for p in probes:
            base, n = p.name, 2
            while p.name in taken:  # names are the panes' labels: keep them unique
                p.name, n = f"{base}_{n}", n + 1
            taken.add(p.name)
        control = self.control
        if control is None:
            self.adding.extend(probes)
            self.restart()
            return
        for p in probes:
            self.adding.append(p)
            self._change(self._adder(control, p))

    def _adder(self, control: ProbeControl, probe: Probe) -> Callable[[], None]:
        return lambda: self._added(probe, control.add_probe(probe))

    def _added(self, probe: Probe, probe_id: int) -> None:
        def keep() -> None:
            if probe in self.adding:
                self.adding.remove(probe)
                self.probes[probe_id] = probe
            self.app.show_probes()
        self.app.call_from_thread(keep)

    def toggle(self, probe_id: int) -> None:
        probe = self.probes.get(probe_id)
        if probe is None:
            return
        probe.enabled = not probe.enabled
        self.app.states.pop(probe_id, None)
        control = self.control
        if control is None:
            self.restart()
        else:  # the state applied is the one wanted when the change runs
            self._change(lambda: control.enable_probe(probe_id, self.probes[probe_id].enabled)
                         if probe_id in self.probes else None)

    def remove(self, probe_id: int) -> None:
        if self.probes.pop(probe_id, None) is None:
            return
        self.app.states.pop(probe_id, None)
        control = self.control
        if control is None:
            self.restart(clear=True)  # a new source numbers from 0: start clean rather than mislabel events
        else:
            self._change(lambda: control.remove_probe(probe_id))

    def _change(self, change: Callable[[], object]) -> None:
        def run() -> None:
            with self._change_lock:
                try:
                    change()
                except Exception as err:
                    self.app.call_from_thread(self.app.editor.show_error, _sentence(err, "the probe change failed"))
        self.app.run_worker(run, thread=True, group="probe-change", exit_on_error=False)

    # --- the source ---------------------------------------------------------------------
    def adopt(self, source: EventSource) -> None:
        """The source given at start-up (live with probes, a replay, the demo)."""
        generation = self.slot.adopt(source)
        if isinstance(source, ProbeControl):
            self.key_probes(list(self.probes.values()), source)
        self.app.bind_layouts()
        self._start(source, generation)

    def restart(self, *, clear: bool = False) -> None:
        """Probes changed and the source cannot change them in place: a new source for the new set."""
        if self.factory is None:
            return
        self.app.run_worker(lambda: self._replace(clear), thread=True, group="restart", exclusive=True,
                            exit_on_error=False)

    def _replace(self, clear: bool) -> None:
        app, factory = self.app, self.factory
        assert factory is not None

        def make() -> EventSource | None:
            app.discard_pending()
            app.call_from_thread(app.reset_panes, clear)
            probes = self.all_probes()
            if not any(p.enabled for p in probes):
                app.call_from_thread(app.main_query(StatusBar).set_state, message="no probe enabled")
                return None
            source = factory(probes)

            def key() -> None:
                self.adding = [p for p in self.adding if p not in probes]
                self.key_probes(probes, source)
                app.show_probes()
            app.call_from_thread(key)
            return source

        try:
            got = self.slot.replace(make)
        except Exception as err:
            app.call_from_thread(app.source_failed, _sentence(err, "tracing could not start"))
            return
        if got is not None:
            self._run_start(*got)

    def _start(self, source: EventSource, generation: int) -> None:
        self.app.run_worker(lambda: self._run_start(source, generation), thread=True, group="source",
                            exit_on_error=False)

    def _run_start(self, source: EventSource, generation: int) -> None:
        app = self.app
        app.call_from_thread(app.main_query(StatusBar).set_state, message=STARTING)
        try:
            started = self.slot.start(source, generation, app.sink)
        except Exception as err:  # a KtuiError sentence, or anything the source did not foresee
            app.call_from_thread(app.source_failed, _sentence(err, "tracing could not start"))
            return
        if started:
            app.call_from_thread(app.source_started)
