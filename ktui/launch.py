"""The `ktui` command's entry point: `ktui list PATTERN` is answered before anything else loads.

Listing is the first thing people type and is measured against ``bpftrace -l`` (issue 17), so the
plain form ``ktui list PATTERN`` goes straight to the index (``ktui.commands.list.quick_main``):
no argparse, no pathlib, no json, no third-party package. Everything else, and every listing the
index cannot answer alone, goes to ``ktui.cli`` as before.

``site_deferred``: the launcher ``scripts/setup.sh`` writes (``.venv/bin/ktui``) starts Python with
``-S``, skipping the site machinery (the virtual environment's .pth files and the editable
install's import hook), which the fast path does not need. Before any other command, which imports
Textual, numpy or BCC from the virtual environment, ``site.main()`` runs it as Python would have.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None, *, site_deferred: bool = False) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "list" and not args[1].startswith("-"):
        from ktui.commands.list import quick_main

        try:
            code = quick_main(args[1])
        except KeyboardInterrupt:
            return 130
        if code is not None:
            return code
    if site_deferred:
        import site

        site.main()
    from ktui.cli import main as cli_main

    return cli_main(argv)
