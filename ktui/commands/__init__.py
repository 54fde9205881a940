"""`ktui`'s subcommands: each module adds its parser (``add_parser``) and runs it (``run``)."""

TYPE_CHECKING = False  # not typing's: `ktui list`'s fast path imports this package without typing or argparse
if TYPE_CHECKING:
    import argparse
    from typing import TypeAlias

    # What each add_parser is given (argparse's subparsers object; generic only to the type checker).
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
