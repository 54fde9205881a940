"""The whole app in fixed states, fed by the fake source (pictures only)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fake_source import FakeSource, fake_catalog, getppid_layout, openat_layout, populated_updates  # noqa: E402
from ktui.app import KtuiApp  # noqa: E402
from ktui.events import Update  # noqa: E402


class StillApp(KtuiApp):
    """KtuiApp with the text cursor not blinking, so pictures are stable."""

    def on_mount(self) -> None:
        # Textual also runs KtuiApp.on_mount (handlers run for every class in the MRO): no super() here.
        from textual.widgets import Input

        for box in self.query(Input):
            box.cursor_blink = False


def populated(mode: str = "live", banner: str = "", **kw) -> StillApp:
    # One update, merged up front: whether two updates coalesce in the app depends on thread timing.
    source = FakeSource({0: getppid_layout(0), 1: openat_layout(1)}, [Update.merge(populated_updates())])
    return StillApp(source=source, catalog_loader=fake_catalog, mode=mode, banner=banner, **kw)


def empty() -> StillApp:
    return StillApp(catalog_loader=fake_catalog, mode="live")
