"""Find and import the distribution's BCC from inside ktui's virtual environment.

BCC is not on PyPI (the ``bcc`` name there is an unrelated project). Debian and
Ubuntu ship it as ``python3-bpfcc`` in ``/usr/lib/python3/dist-packages/bcc``,
Fedora as ``python3-bcc`` in ``/usr/lib/python3.X/site-packages/bcc``. It is pure
Python over ``libbcc.so`` (ctypes), so it runs under any Python 3 interpreter.

We import exactly that one package by path, without adding the system's whole
site-packages to ``sys.path`` (which would drag in the system's other, possibly
conflicting, packages).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import sys
from types import ModuleType

from ktui.errors import CapabilityError

_CANDIDATE_DIRS = [
    "/usr/lib/python3/dist-packages",  # Debian, Ubuntu
    "/usr/local/lib/python3/dist-packages",
    *sorted(glob.glob("/usr/lib/python3*/site-packages"), reverse=True),  # Fedora, Arch
    *sorted(glob.glob("/usr/lib64/python3*/site-packages"), reverse=True),
    *sorted(glob.glob("/usr/local/lib/python3*/dist-packages"), reverse=True),
    *sorted(glob.glob("/usr/share/bcc/python")),
]


class BccUnavailable(CapabilityError):
    pass


def find_bcc_dir() -> str | None:
    """The directory of the distribution's ``bcc`` package, or None."""
    override = os.environ.get("KTUI_BCC_PATH")
    dirs = [override] if override else _CANDIDATE_DIRS
    for base in dirs:
        init = os.path.join(base, "bcc", "__init__.py")
        # The PyPI project called `bcc` has no libbcc.py: make sure this is the real one.
        if os.path.isfile(init) and os.path.isfile(os.path.join(base, "bcc", "libbcc.py")):
            return os.path.join(base, "bcc")
    return None


_loaded: ModuleType | None = None
_failure: BccUnavailable | None = None


def load_bcc() -> ModuleType:
    """Import and return the ``bcc`` module, or raise BccUnavailable with a clear sentence."""
    global _loaded, _failure
    if _loaded is not None:
        return _loaded
    if _failure is not None:
        raise _failure
    existing = sys.modules.get("bcc")
    if existing is not None and hasattr(existing, "BPF"):
        _loaded = existing
        return existing
    pkg_dir = find_bcc_dir()
    if pkg_dir is None:
        _failure = BccUnavailable(
            "BCC is not installed (install the distribution package: python3-bpfcc on "
            "Debian/Ubuntu, python3-bcc on Fedora); live tracing is unavailable, "
            "but browsing, compiling and replaying recordings still work."
        )
        raise _failure
    spec = importlib.util.spec_from_file_location(
        "bcc", os.path.join(pkg_dir, "__init__.py"), submodule_search_locations=[pkg_dir]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bcc"] = module
    try:
        spec.loader.exec_module(module)
    except (OSError, ImportError, AttributeError) as err:
        sys.modules.pop("bcc", None)
        for name in [n for n in sys.modules if n.startswith("bcc.")]:
            sys.modules.pop(name, None)
        _failure = BccUnavailable(
            f"BCC's Python package was found in {pkg_dir} but could not load libbcc ({err}); "
            "reinstall libbpfcc. Live tracing is unavailable; replay still works."
        )
        raise _failure from err
    _loaded = module
    return module


def bcc_version() -> str | None:
    try:
        bcc = load_bcc()
    except BccUnavailable:
        return None
    try:
        from bcc.version import __version__

        return str(__version__)
    except ImportError:
        return getattr(bcc, "__version__", "unknown")
