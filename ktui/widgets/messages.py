"""Textual messages that carry data up from sources, workers and widgets to the app."""

from __future__ import annotations

from textual.message import Message

from ktui.events import Update


class UpdateArrived(Message):
    """A source's Update, posted from the source's own thread (post_message is thread-safe)."""

    def __init__(self, update: Update) -> None:
        super().__init__()
        self.update = update


class CatalogLoaded(Message):
    """The catalog finished loading in a worker (``catalog`` is None and ``error`` says why on failure)."""

    def __init__(self, catalog: object | None, error: str = "") -> None:
        super().__init__()
        self.catalog = catalog
        self.error = error


class EntryChosen(Message):
    """The user picked a catalog entry (Enter in the symbol browser): build a probe from it."""

    def __init__(self, entry: object) -> None:
        super().__init__()
        self.entry = entry


class ProbeSubmitted(Message):
    """The probe editor built probes the user wants added to the session."""

    def __init__(self, probes: list) -> None:
        super().__init__()
        self.probes = probes


class ProbeToggled(Message):
    """Enable or disable the probe with this id (the id its source handed out)."""

    def __init__(self, probe_id: int) -> None:
        super().__init__()
        self.probe_id = probe_id


class ProbeRemoved(Message):
    """Remove the probe with this id from the session."""

    def __init__(self, probe_id: int) -> None:
        super().__init__()
        self.probe_id = probe_id
