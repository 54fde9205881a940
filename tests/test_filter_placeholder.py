"""The stream's filter and search boxes show the FIELD=VALUE form with examples (issue 15), and every
example they show is accepted by the filter language (ktui.row_filter) as the form it shows: an exact
match of that field, not text found somewhere in the row."""

from __future__ import annotations

import numpy as np
import pytest

from fake_source import run_async_tests
from ktui.app import KtuiApp
from ktui.kernel import KernelIdentity
from ktui.recording import RecordingWriter
from ktui.recording.synthetic import LAYOUTS, records
from ktui.row_filter import FIELD_EXAMPLES, placeholder, text_filter
from ktui.sources.replay import ReplaySource
from ktui.widgets.event_stream import StreamFilter, StreamSearch

OPENAT = LAYOUTS[1]  # sys_exit_openat: ret and a filename, besides every record's pid, comm...


@pytest.mark.parametrize("example", FIELD_EXAMPLES)
def test_each_example_is_an_exact_field_match(example):
    key, value = example.split("=", 1)
    recs = np.zeros(3, dtype=OPENAT.dtype)
    recs["probe"] = OPENAT.probe_id
    if recs.dtype[key].kind == "S":
        # the value itself, the value inside a longer one (text search would keep it), another value
        recs[key] = [value.encode(), value.encode() + b"x", b"other"]
    else:
        recs[key] = [int(value), int(value + "4"), 1]
    match = text_filter(example, {OPENAT.probe_id: OPENAT})
    assert match is not None
    assert match(OPENAT.probe_id, recs).tolist() == [True, False, False]


def test_the_placeholders_name_the_form_and_every_example():
    for verb in ("filter", "find (n/N)"):
        text = placeholder(verb)
        assert text.startswith(verb) and "FIELD=VALUE" in text
        assert all(example in text for example in FIELD_EXAMPLES)


async def test_the_boxes_show_their_placeholder_whole_at_80x24(tmp_path):
    path = tmp_path / "r.ktrec"
    w = RecordingWriter.create(path, KernelIdentity("6.1.0-test", "#1", "x86_64", "abc"), LAYOUTS)
    w.append(1, records(OPENAT, 500, seed=1))
    w.close()
    app = KtuiApp(source=ReplaySource([path]), mode="replay", banner="Replaying (read-only).")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("f")
        await pilot.pause(0.2)
        box = app.main_query(StreamFilter)
        assert box.display and box.placeholder == placeholder("filter")
        assert len(box.placeholder) <= box.content_region.width, (len(box.placeholder), box.content_region.width)
        search = app.main_query(StreamSearch)
        assert search.placeholder == placeholder("find (n/N)")
        await pilot.press("escape", "s")
        await pilot.pause(0.2)
        assert search.display
        assert len(search.placeholder) <= search.content_region.width, (len(search.placeholder), search.content_region.width)
        await pilot.press("escape", "q")


run_async_tests(globals())
