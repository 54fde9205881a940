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

    def recording(self) -> Path | None:
        """The recording the pane queries: the replay's first file (its imported copy for ftrace text)."""
        source = self.app.source
        if isinstance(source, ReplaySource) and source.tracks:
            return source.tracks[0].reader.path
        return None

    def available(self) -> bool:
        return self.app.mode != "live" and self.recording() is not None

    def open(self) -> None:
        path = self.recording()
        if path is None:
            return
        more = ""
        source = self.app.source
        if isinstance(source, ReplaySource) and len(source.tracks) > 1:
            more = f" (the first of {len(source.tracks)} recordings)"
        pane = QueryPane(f"SQL over {path.name}{more}", self.submit, **({"sql": self._sql} if self._sql else {}))
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
                    path = self.recording()
                    if path is None:
                        raise KtuiError("no recording is open")
                    session = SqlSession.open(path)
                    if self._closed:  # the app quit while the recording was being read
                        session.close()
                        return
                    self._session = session
                result: QueryResult = self._session.query(sql, max_rows=MAX_ROWS)
            except KtuiError as err:
                self.app.call_from_thread(pane.show_error, str(err))
                return
            self.app.call_from_thread(pane.show_result, result, time.monotonic() - started)
        finally:
            self._lock.release()

    def close(self) -> None:
        """At the app's end: a running query is interrupted, the temporary export removed."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            session.interrupt()
            session.close()
