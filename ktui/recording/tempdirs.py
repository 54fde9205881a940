"""Private temporary directories for replay (a crashed recording's copy, imported ftrace text).

Each carries its owner's pid in its name, so the next ktui can remove those a killed
ktui left behind (SIGKILL runs no cleanup).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

from ktui.kernel import process_alive

_NAME = re.compile(r"^ktui-(?:replay|import|export)-(\d+)-")


def private_tempdir(kind: str) -> str:
    """A new 0700 directory ``ktui-<kind>-<pid>-*`` in the system temp dir; sweeps stale ones first."""
    sweep_stale()
    return tempfile.mkdtemp(prefix=f"ktui-{kind}-{os.getpid()}-")


def sweep_stale() -> None:
    base = tempfile.gettempdir()
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        m = _NAME.match(name)
        if not m or int(m[1]) == os.getpid() or process_alive(int(m[1])):
            continue
        path = os.path.join(base, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if st.st_uid == os.geteuid() and not os.path.islink(path) and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
