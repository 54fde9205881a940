"""The recording format: SQLite file with compressed event chunks; writer and read-only reader
(replay, which also reads ftrace text, is ktui/sources/replay.py)."""

from ktui.recording.reader import RecordingReader
from ktui.recording.writer import RecordingWriter

__all__ = ["RecordingReader", "RecordingWriter"]
