"""The top-style COUNT table's highlight follows its key, not its position: after `s` / `r` re-sort
the table, and after new counts reorder it, the highlighted row (what Enter inspects) is the same
key as before, drawn where that key now is."""

from __future__ import annotations

import io

from rich.console import Console
from textual.app import App, ComposeResult

from fake_source import run_async_tests
from ktui.events import KeyCounts
from ktui.widgets.key_counts import CountsScroll, KeyCountsView


class CountsApp(App):
    def compose(self) -> ComposeResult:
        with CountsScroll(id="cpus-scroll"):
            yield KeyCountsView(id="key-counts")


def table(counts: dict[str, int]) -> list[KeyCounts]:
    rows = sorted((((comm.encode(),), n) for comm, n in counts.items()), key=lambda r: -r[1])
    return [KeyCounts(0, ("comm",), rows)]


def highlighted_line(view: KeyCountsView) -> str:
    out = io.StringIO()
    Console(file=out, width=78, color_system=None).print(view._render_all())
    return out.getvalue().splitlines()[view.cursor_line()]


async def test_the_highlight_stays_on_its_key_through_resorts_and_new_counts():
    app = CountsApp()
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(KeyCountsView)
        view.set_counts(table({"bash": 30, "cat": 20, "sshd": 10}), {0: "sys_enter_openat"}, 1.0)
        app.query_one(CountsScroll).focus()
        await pilot.press("down")  # bash, then cat
        await pilot.pause()
        assert view.cursor_key() == (0, ("comm",), (b"cat",)) and view.cursor == 1
        assert "cat" in highlighted_line(view)
        await pilot.press("r")  # smallest first: sshd, cat, bash -> cat is still the middle row
        await pilot.pause()
        assert view.cursor_key() == (0, ("comm",), (b"cat",))
        await pilot.press("s", "s")  # by rate, then by key: bash, cat, sshd reversed -> sshd, cat, bash
        await pilot.pause()
        assert view.sort_column == "key" and view.cursor_key() == (0, ("comm",), (b"cat",))
        await pilot.press("r")  # by key, smallest first: bash, cat, sshd
        await pilot.press("up")  # bash
        await pilot.press("s")  # back to count, largest first: bash is first
        await pilot.pause()
        assert view.sort_column == "count" and view.cursor_key() == (0, ("comm",), (b"bash",))
        assert view.cursor == 0
        # New counts reorder the rows (sshd overtakes everyone): the highlight moves with bash.
        view.set_counts(table({"bash": 31, "cat": 20, "sshd": 500}), {0: "sys_enter_openat"}, 2.5)
        assert view.cursor_key() == (0, ("comm",), (b"bash",)) and view.cursor == 1
        assert "bash" in highlighted_line(view) and "sshd" not in highlighted_line(view)
        # A key gone from the table: the highlight stays at its place, within the rows.
        view.set_counts(table({"cat": 21, "sshd": 501}), {0: "sys_enter_openat"}, 4.0)
        assert view.cursor == 1 and view.cursor_key() == (0, ("comm",), (b"cat",))


run_async_tests(globals())
