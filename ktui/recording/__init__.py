"""The recording format: SQLite file with compressed event chunks; writer, read-only reader, replay."""

from ktui.recording.reader import RecordingReader
from ktui.recording.writer import RecordingWriter

__all__ = ["RecordingReader", "RecordingWriter", "ReplaySource"]


def __getattr__(name: str):
    # ReplaySource starts threads and imports more; load it only when asked for.
    if name == "ReplaySource":
        from ktui.recording.replay_source import ReplaySource

        return ReplaySource
    raise AttributeError(name)
