"""The app over several hosts (`ktui --host A --host B SPEC...`): a HostsSource in the live panes."""

from __future__ import annotations

import sys

from ktui.commands.hosts import build_app_parser, links_from
from ktui.textsafe import term_safe


def run_app(argv: list[str]) -> int:
    args = build_app_parser().parse_args(argv)
    from ktui.app import KtuiApp
    from ktui.app_main import _run
    from ktui.engine import cleanup
    from ktui.remote.source import HostsSource

    source = HostsSource(links_from(args, list(args.specs)))
    cleanup.register(source)  # SIGTERM and exit paths stop it: the hosts see their stdin end
    hosts = ", ".join(link.label for link in source.links)
    app = KtuiApp(source=source, mode="live", banner=f"Live on {len(source.links)} hosts over ssh: {hosts}.")
    try:
        return _run(app)
    finally:
        source.stop()
        for link in source.links:
            print(f"ktui: {term_safe(link.describe())}", file=sys.stderr)
