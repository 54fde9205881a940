"""Shared test setup.

Live tests (``@pytest.mark.live``) need root and this machine's real kernel. Where
they cannot run they skip with the reason, except when ``KTUI_REQUIRE_LIVE=1``
(CI), where a skip becomes a failure: CI must prove the live pipeline.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOTS = ROOT / "snapshots"

# Deterministic terminals for snapshot and pilot tests; a developer's own config
# never leaks into a test.
os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
os.environ.pop("NO_COLOR", None)
os.environ["COLUMNS"] = "80"
os.environ["LINES"] = "24"
os.environ["LC_ALL"] = "C.UTF-8"


def _redirect_snapshots() -> None:
    """pytest-textual-snapshot stores pictures beside the tests; ours live in snapshots/."""
    try:
        import pytest_textual_snapshot
    except ImportError:  # snapshot plugin absent: the snapshot tests will say so
        return

    class _TopLevelSnapshots(pytest_textual_snapshot.SVGImageExtension):
        @classmethod
        def dirname(cls, *, test_location) -> str:  # type: ignore[override]
            return str(SNAPSHOTS / test_location.basename)

    pytest_textual_snapshot.SVGImageExtension = _TopLevelSnapshots


_redirect_snapshots()


def require_live() -> bool:
    return os.environ.get("KTUI_REQUIRE_LIVE") == "1"


def live_unavailable_reason() -> str | None:
    """Why live BPF tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "live tests need root"
    from ktui.bccload import BccUnavailable, load_bcc

    try:
        load_bcc()
    except BccUnavailable as err:
        return str(err)
    from ktui.headers import HeadersUnavailable, ensure_headers

    try:
        ensure_headers()
    except HeadersUnavailable as err:
        return str(err)
    return None


def pytest_collection_modifyitems(config, items):
    live_items = [item for item in items if item.get_closest_marker("live")]
    if not live_items:
        return
    reason = live_unavailable_reason()
    if reason is None:
        return
    for item in live_items:
        if require_live():
            item.user_properties.append(("live_unavailable", reason))
        else:
            item.add_marker(pytest.mark.skip(reason=f"live: {reason}"))


@pytest.fixture(autouse=True)
def _fail_when_live_required(request):
    for key, value in request.node.user_properties:
        if key == "live_unavailable":
            pytest.fail(f"KTUI_REQUIRE_LIVE=1 but live tests cannot run: {value}", pytrace=False)
    yield
