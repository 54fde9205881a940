"""Replay controls: pause, seek, step, speed, for a source that declares events.Playback."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ktui.events import Playback
from ktui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from ktui.app import KtuiApp


class ReplayController:
    def __init__(self, app: KtuiApp) -> None:
        self.app = app
        self.paused = False
        self.speed = 1.0

    @property
    def playback(self) -> Playback | None:
        source = self.app.source
        return source if isinstance(source, Playback) else None

    def started(self) -> None:
        """A replay starts paused; the panes should move at once."""
        if self.playback is not None:
            self.playback.play()

    def toggle_pause(self) -> None:
        playback = self.playback
        if playback is None:
            return
        self.paused = not self.paused
        (playback.pause if self.paused else playback.play)()
        self.app.main_query(StatusBar).set_state(paused=self.paused)

    def seek(self, seconds: float) -> None:
        playback = self.playback
        if playback is None:
            return
        playback.seek(int(playback.position_ns + seconds * 1e9))
        self.app.main_query(StatusBar).set_state(message=f"seek {seconds:+g}s")

    def step(self) -> None:
        playback = self.playback
        if playback is None:
            return
        self.paused = True
        playback.step(1)
        self.app.main_query(StatusBar).set_state(paused=True)

    def change_speed(self, factor: float) -> None:
        playback = self.playback
        if playback is None:
            return
        self.speed = max(0.125, min(64.0, self.speed * factor))
        playback.set_speed(self.speed)
        self.app.main_query(StatusBar).set_state(message=f"speed x{self.speed:g}")
