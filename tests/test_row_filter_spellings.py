"""The stream's filter takes the kernel filter's spelling too: `comm == "cat"` means `comm=cat`
(it used to compare every comm with '= "cat"' and match nothing, silently)."""

from __future__ import annotations

import numpy as np
import pytest

from ktui.row_filter import text_filter


@pytest.mark.parametrize("query", ['comm=cat', 'comm == "cat"', 'comm="cat"', "comm = 'cat'", 'pid == 7'])
def test_comm_and_pid_in_either_spelling(query):
    recs = np.zeros(3, dtype=[("comm", "S16"), ("pid", "<u4"), ("tid", "<u4")])
    recs["comm"] = [b"cat", b"cat", b"bash"]
    recs["pid"] = [7, 8, 7]
    match = text_filter(query, {})
    assert match is not None
    want = [True, True, False] if query.startswith("comm") else [True, False, True]
    assert match(0, recs).tolist() == want
