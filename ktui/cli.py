"""The `ktui` command: the app by default, and the headless subcommands.

Each headless subcommand lives in ``ktui/commands/<name>.py`` with
``add_parser(subparsers)`` and ``run(args) -> int``; none of them imports Textual.
Only the interactive entry points (no subcommand, ``replay``) import the app.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from ktui import __version__
from ktui.errors import KtuiError
from ktui.textsafe import term_safe

if TYPE_CHECKING:
    from ktui.diff.compare import RecordingDiff

# command -> module under ktui.commands. Only the module of the command being run is
# imported (start-up time matters for `ktui list | grep`); all of them for --help.
HEADLESS = {"doctor": "doctor", "list": "list", "compile": "compile", "record": "record",
            "import": "import_", "export": "export", "stream": "stream", "query": "query",
            "diff": "diff"}


def _wanted_modules(argv: list[str]) -> list[str]:
    for arg in argv:
        if arg.startswith("-"):
            continue
        if arg in HEADLESS:
            return [HEADLESS[arg]]
        break
    return list(HEADLESS.values())


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ktui",
        description="Terminal UI kernel trace explorer. Without a subcommand, opens the app.",
    )
    parser.add_argument("--version", action="version", version=f"ktui {__version__}")
    parser.add_argument("--session", metavar="FILE", help="open (and save to) this session file")
    parser.add_argument("--demo", action="store_true", help="open the bundled demo recording read-only")
    parser.add_argument("--trace-self", action="store_true",
                        help="let probes see ktui's own process too (off: its system calls would flood the stream)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _wanted_modules(sys.argv[1:] if argv is None else argv):
        try:
            module = importlib.import_module(f"ktui.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"ktui.commands.{name}":
                continue
            raise
        module.add_parser(sub)
    if "diff" in sub.choices:  # `ktui diff --view`: the screen lives outside the headless commands
        sub.choices["diff"].set_defaults(show_view=_view_diff)
    replay = sub.add_parser("replay", help="open recordings (or ftrace text) read-only in the panes; needs no root, no BCC")
    replay.add_argument("files", nargs="+", metavar="FILE",
                        help="recordings, ftrace text, or a directory of recordings (`ktui record --host` writes one)")
    replay.set_defaults(run=_run_replay)
    return parser


def _view_diff(result: RecordingDiff) -> None:
    from ktui.app_diff import DiffApp

    DiffApp(result).run()


def _run_replay(args: argparse.Namespace) -> int:
    from ktui.app_main import run_replay

    args.files = _expand_dirs(args.files)
    return run_replay(args)


def _expand_dirs(paths: list[str]) -> list[str]:
    """A directory stands for the recordings in it (one per host, from `ktui record --host`)."""
    import os

    out = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".ktrec"))
            if not found:
                raise KtuiError(f"{path} is a directory without recordings (*.ktrec) in it.")
            out.extend(found)
        else:
            out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if "--host" in words or any(w.startswith("--host=") for w in words):
        from ktui.commands.hosts import wants_hosts

        if wants_hosts(words, {*HEADLESS, "replay"}):  # `ktui --host A --host B SPEC...`: the app over hosts
            from ktui.app_hosts import run_app as run_hosts_app

            return _guarded(lambda: run_hosts_app(words))
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    return _guarded(lambda: _dispatch(args))


def _dispatch(args: argparse.Namespace) -> int:
    if args.command is None:
        from ktui.app_main import run_app

        return run_app(args)
    return int(args.run(args) or 0)


def _guarded(run: Callable[[], int | None]) -> int:
    try:
        return int(run() or 0)
    except KtuiError as err:
        print(f"ktui: {term_safe(err, multiline=True)}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `ktui list | head`: the reader left; that is not an error.
        sys.stderr.close()
        return 0
