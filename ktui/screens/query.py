"""The SQL pane over the open recording (replay): the DuckDB session and its life.

The session is built on the first query, in a worker thread (a recording is exported to
Parquet in a private temporary directory first: seconds for a large one), kept for the
next queries, and closed with the app. Queries run in the same worker thread, one at a time.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ktui.errors import KtuiError
from ktui.formats.query import QueryResult, SqlSession
from ktui.sources.replay import ReplaySource
from ktui.widgets.query_pane import QueryPane

if TYPE_CHECKING:
    from ktui.app import KtuiApp

MAX_ROWS = 1000  # shown in the pane; `ktui query` prints every row


class QueryController:
    def __init__(self, app: KtuiApp) -> None:
        self.app = app
        self._session: SqlSession | None = None
        self._lock = threading.Lock()  # one query (and one session build) at a time
        self._pane: QueryPane | None = None
        self._sql: str | None = None
        self._closed = False
        self._note = ""

    def recordings(self) -> list[Path]:
        """The recordings the pane queries: the replay's files (imported copies for ftrace text)."""
        source = self.app.source
        if isinstance(source, ReplaySource):
            return [t.reader.path for t in source.tracks]
        return []

    def available(self) -> bool:
        return self.app.mode != "live" and bool(self.recordings())

    def open(self) -> None:
        paths = self.recordings()
        if not paths:
            return
        what = paths[0].name if len(paths) == 1 else f"{len(paths)} recordings (a host column tells them apart)"
        pane = QueryPane(f"SQL over {what}", self.submit, **({"sql": self._sql} if self._sql else {}))
        self._pane = pane
        self.app.push_screen(pane)

    def submit(self, sql: str) -> None:
        self._sql = sql
        pane = self._pane
        if pane is None:
            return
        if not self._lock.acquire(blocking=False):
            pane.show_busy("a query is still running…")
            return
        pane.show_busy("reading the recording into Parquet…" if self._session is None else "running…")
        self.app.run_worker(lambda: self._run(sql, pane), thread=True, group="sql", exit_on_error=False)

    def _run(self, sql: str, pane: QueryPane) -> None:
        try:
            started = time.monotonic()
            try:
                if self._session is None:
                    paths = self.recordings()
                    if not paths:
                        raise KtuiError("no recording is open")
                    warnings: list[str] = []  # damage of a recording: said beside every answer
                    session = (SqlSession.open(paths[0], warnings=warnings) if len(paths) == 1 else
                               SqlSession.open_recordings(paths, where=", ".join(p.name for p in paths),
                                                          warnings=warnings))
                    self._note = " ".join(warnings)
                    if self._closed:  # the app quit while the recording was being read
                        session.close()
                        return
                    self._session = session
                result: QueryResult = self._session.query(sql, max_rows=MAX_ROWS)
            except KtuiError as err:
                self.app.call_from_thread(pane.show_error, str(err))
                return
            self.app.call_from_thread(pane.show_result, result, time.monotonic() - started, self._note)
        finally:
            self._lock.release()

    def close(self) -> None:
        """At the app's end: a running query is interrupted, the temporary export removed."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            session.interrupt()
            session.close()
