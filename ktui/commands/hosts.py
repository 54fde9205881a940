"""`ktui --host [USER@]HOST ... SPEC...` and `ktui record --host ... -o DIR`: several hosts over ssh.

Each host runs `ktui stream` (its own ktui, reached through the system's OpenSSH client with
the user's configuration, keys and agent); ``ktui/remote/`` reads and merges the streams.
The app shows one live timeline (probe names carry the host); `ktui record` writes one
recording per host into a new directory, which `ktui replay DIR` opens as one timeline with
a track per host.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING

from ktui.errors import UsageError
from ktui.textsafe import term_safe

if TYPE_CHECKING:
    from ktui.remote.hosts import HostLink

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def add_host_options(p: argparse.ArgumentParser) -> None:
    """The options every --host command shares (the app's and `ktui record`'s)."""
    g = p.add_argument_group("several hosts over ssh")
    g.add_argument("--host", action="append", default=[], metavar="[USER@]HOST",
                   help="trace on this host, through ssh (repeat for each host; give localhost to include this one); its ktui runs `ktui stream`")
    g.add_argument("--host-filter", action="append", nargs=2, default=[], metavar=("HOST", "EXPR"),
                   help="an extra filter for one host's probes (e.g. the pid of a process that lives there)")
    g.add_argument("--remote-ktui", default="ktui", metavar="COMMAND",
                   help="the ktui command on the hosts (default: ktui on their PATH)")
    g.add_argument("--ssh-config", metavar="FILE", help="an ssh configuration file instead of ~/.ssh/config (ssh -F)")
    g.add_argument("--ssh-option", action="append", default=[], metavar="OPTION",
                   help="an ssh -o option (repeatable), e.g. Port=2222")


def wants_hosts(argv: list[str], commands: set[str]) -> bool:
    """`ktui --host ...` (the app over hosts): --host given and no subcommand (of ``commands``) named."""
    if not any(a == "--host" or a.startswith("--host=") for a in argv):
        return False
    return not _first_word_is_command(argv, commands)


def _first_word_is_command(argv: list[str], commands: set[str]) -> bool:
    skip = skip2 = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--host", "--remote-ktui", "--ssh-config", "--ssh-option", "--session", "--filter", "-p", "--pid",
                 "-d", "--duration"):
            skip = True
            continue
        if a == "--host-filter":  # two values
            skip2 = True
            skip = True
            continue
        if skip2:
            skip2 = False
            continue
        if a.startswith("-"):
            continue
        return a in commands
    return False


def build_app_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ktui", description="Live tracing on several hosts at once, over ssh, "
                                "in one timeline.")
    p.add_argument("specs", nargs="+", metavar="SPEC", help="probes, as for `ktui record`, run on every host")
    p.add_argument("--filter", metavar="EXPR", help="keep only events for which EXPR holds, on every host")
    add_host_options(p)
    return p


def links_from(args: argparse.Namespace, specs: list[str]) -> list[HostLink]:
    from ktui.remote.hosts import make_links

    if not args.host:
        raise UsageError("give at least one --host.")
    filters: dict[str, str] = {}
    for host, expr in args.host_filter:
        if host in filters:
            raise UsageError(f"--host-filter names {host} twice; join the filters with &&.")
        filters[host] = expr
    for expr in [args.filter, *filters.values()]:
        if expr is not None:
            from ktui.probes.filter import parse_filter

            parse_filter(expr)  # a malformed filter is one sentence here, not one per host
    return make_links(list(args.host), specs, filter_text=args.filter, host_filters=filters,
                      pid=getattr(args, "pid", None), remote_ktui=args.remote_ktui, ssh_config=args.ssh_config,
                      ssh_options=list(args.ssh_option))


def record(args: argparse.Namespace) -> int:
    """`ktui record --host ... -o DIR`: one recording per host in DIR, until the duration ends or a signal."""
    from ktui.remote.source import HostsSource

    if args.session is not None or args.command_argv:
        raise UsageError("with --host, give probes as SPECs (no --session, no -- COMMAND).")
    if not args.specs:
        raise UsageError("no probes given: name at least one SPEC.")
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be a positive number of seconds.")
    source = HostsSource(links_from(args, list(args.specs)), record_dir=args.output)
    stop: dict[str, str | None] = {"signal": None}

    def handler(signum: int, _frame: FrameType | None) -> None:
        stop["signal"] = signal.Signals(signum).name

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        source.start(lambda update: None)
        for link in source.links:
            if not args.quiet:
                print(f"ktui: {term_safe(link.describe())}", file=sys.stderr)
        deadline = time.monotonic() + args.duration if args.duration else None
        while stop["signal"] is None and not source.finished.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(0.1)
    finally:
        source.stop()
        for sig, h in previous.items():
            signal.signal(sig, h)
    last = source.last_update
    totals = {gid: c.totals() for gid, c in (last.counters if last is not None else {}).items()}
    for link in source.links:
        ids = [gid for (label, _rid), gid in source._ids.items() if label == link.label]
        hits = sum(totals[g]["hits"] for g in ids if g in totals)
        dropped = sum(totals[g]["dropped"] for g in ids if g in totals)
        n = source.events_delivered.get(link.label, 0)
        print(f"ktui: {term_safe(link.describe())}; {n:,} events of {hits:,} hits"
              + (f", {dropped:,} dropped" if dropped else ""), file=sys.stderr)
    for err in source.record_errors:
        print(f"ktui: {term_safe(err)}", file=sys.stderr)
    paths = source.recording_paths()
    print(f"ktui: {len(paths)} host recordings in {term_safe(args.output)} (`ktui replay {term_safe(args.output)}`)",
          file=sys.stderr)
    if not paths or source.record_errors:
        return 1
    return 0 if all(link.status != "failed" for link in source.links) else 1

