"""Opening an ELF file with pyelftools, every way it can be wrong told in one sentence. Its own
module so the DWARF reader and the symbol reader can both use it without importing each other."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ktui.errors import FileFormatError


@contextlib.contextmanager
def open_elf(path: str) -> Iterator[Any]:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise FileFormatError(f"{path} does not exist.") from None
    except IsADirectoryError:
        raise FileFormatError(f"{path} is a directory, not a program or library.") from None
    except OSError as err:
        raise FileFormatError(f"cannot read {path}: {err.strerror}.") from None
    with f:
        magic = f.read(4)
        if magic != b"\x7fELF":
            raise FileFormatError(f"{path} is not an ELF file.")
        f.seek(0)
        try:
            elf = ELFFile(f)
        except (ELFError, Exception) as err:
            raise FileFormatError(f"{path} is a truncated or corrupt ELF file ({type(err).__name__}).") from None
        yield elf
