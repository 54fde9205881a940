"""Sessions in the app: what the screen shows restored from a session's [layout] when it opens, and
the session saved back (ctrl+s) or under a new path (ctrl+o, "save as"), probes, target and layout.

What a session holds, how a saved one merges with the file it came from and what is valid are the
core's rules (ktui.session: Session.updated, SessionView); this module only reads the screen into a
SessionView and sets the screen from one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ktui.errors import KtuiError
from ktui.session import Session, SessionView
from ktui.widgets.event_stream import EventStream, StreamFilter, StreamSearch
from ktui.widgets.path_prompt import PathPrompt
from ktui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from ktui.app import KtuiApp


class SessionController:
    def __init__(self, app: KtuiApp, session: Session | None) -> None:
        self.app = app
        self.session = session or Session()  # the file's contents as loaded (or nothing yet)

    # --- the screen <-> SessionView ---------------------------------------------------------
    def current_view(self) -> SessionView:
        app = self.app
        status = app.main_query(StatusBar)
        return SessionView(tab=app.active_tab or "stream", browser=app.browser_wanted,
                           filter=status.filter_text, search=status.search_text)

    def restore(self) -> None:
        """On mount: the tab, the browser, the stream's filter and search the session saved."""
        view = self.session.view
        app = self.app
        if view.browser is not None:
            app.browser_wanted = view.browser
            app.main_query("#browser").display = view.browser
        stream = app.main_query(EventStream)
        status = app.main_query(StatusBar)
        if view.filter:
            app.main_query(StreamFilter).value = view.filter
            stream.set_filter(view.filter)
            status.set_state(filter_text=view.filter)
        if view.search:
            app.main_query(StreamSearch).value = view.search
            stream.search_query = view.search
            status.set_state(search_text=view.search)
        if view.tab != "stream":
            app.call_after_refresh(app.action_show_tab, view.tab)
        target = self.session.target
        if target is not None and target.command and app.mode == "live":
            app.notify(f"This session traces a command it starts ({' '.join(target.command)}): the app does "
                       "not start commands; the target is kept and saved back.", severity="warning", timeout=8)

    def reapply_filter(self) -> None:
        """Layouts arrived (the source started): the filter's FIELD=VALUE terms can be resolved now."""
        status = self.app.main_query(StatusBar)
        if status.filter_text:
            self.app.main_query(EventStream).set_filter(status.filter_text)

    # --- saving ------------------------------------------------------------------------------
    def save(self, path: str | None = None) -> None:
        """Save to ``path``, else the session's own file, else session.toml in ktui's data directory."""
        app = self.app
        path = path or app.session_path
        try:
            if path is None:
                from ktui.paths import data_dir

                path = str(data_dir() / "session.toml")
            updated = self.session.updated(list(app.probes), self.current_view(), _this_kernel())
            updated.save(path)
        except (KtuiError, OSError) as err:
            app.notify(f"The session was not saved: {err}", severity="error")
            return
        self.session = updated
        app.session_path = path
        app.notify(f"Session saved to {path}")

    def save_as(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.save(os.path.expanduser(path))
        self.app.push_screen(PathPrompt("Save the session as (a TOML file; Enter saves, Escape cancels):",
                                        self.app.session_path or "", "/path/to/session.toml"), chosen)


def _this_kernel():
    """The kernel the probes run on, written into the session (reopened elsewhere, they are re-checked)."""
    try:
        from ktui.kernel import kernel_identity

        return kernel_identity()
    except Exception:  # noqa: BLE001 -- the identity is advice for later; a session saves without it
        return None
