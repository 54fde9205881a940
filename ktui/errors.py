"""Errors that reach the user as one clear sentence, never a traceback."""

from __future__ import annotations


class KtuiError(Exception):
    """A problem the user can act on.

    ``str(err)`` is the sentence shown to the user: what is wrong and, where it
    helps, what still works or what to do. ``where`` optionally names the file,
    probe or field (with position) that caused it.
    """

    exit_code = 1

    def __init__(self, message: str, *, where: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.detail = detail  # raw log (verifier output, compiler text) shown on request

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class UsageError(KtuiError):
    """Bad command-line input (a pattern, a spec, an option)."""

    exit_code = 2


class CapabilityError(KtuiError):
    """The machine cannot do something: not root, no BCC, no headers, no kprobes."""

    exit_code = 3


class ParseError(KtuiError):
    """Text that does not parse: a filter, a probe spec, a file. Carries a position."""

    exit_code = 2

    def __init__(self, message: str, *, text: str = "", pos: int | None = None, where: str | None = None):
        self.text = text
        self.pos = pos
        if pos is not None and where is None:
            where = f"column {pos + 1}"
        super().__init__(message, where=where)

    def caret(self) -> str:
        """The input with a caret under the offending position, for terminals."""
        if self.pos is None:
            return self.text
        return f"{self.text}\n{' ' * self.pos}^"


class FileFormatError(KtuiError):
    """A file (recording, session, ftrace text, BTF, ELF) that cannot be read as what it claims."""

    exit_code = 4


class UnknownMember(KtuiError):
    """A struct or union has no member of that name (BTF or DWARF alike); ``members`` are the
    names it has, for ktui.probes.resolve to name the closest ones."""

    def __init__(self, struct: str, name: str, members: list[str]):
        super().__init__(f"{struct} has no member named {name!r}.")
        self.struct, self.name, self.members = struct, name, members
