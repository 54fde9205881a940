"""Where ktui keeps its cache, data and config (platformdirs, overridable for tests)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir() -> Path:
    override = os.environ.get("KTUI_CACHE_DIR")
    path = Path(override) if override else Path(platformdirs.user_cache_dir("ktui"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    override = os.environ.get("KTUI_DATA_DIR")
    path = Path(override) if override else Path(platformdirs.user_data_dir("ktui"))
    path.mkdir(parents=True, exist_ok=True)
    return path
