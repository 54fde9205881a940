"""Attach the given probe specs with ktui's engine and hold them until killed.

test_kprobes.py kills this with SIGKILL and checks that the kernel is left clean."""

import sys
import time

from ktui.sources.live import LiveSource
from ktui.probes.spec import parse_spec

probes = [p for spec in sys.argv[1:] for p in parse_spec(spec)]
source = LiveSource(probes)
source.start(lambda update: None)
failed = [(s.spec, s.reason) for s in source.states.values() if s.status == "failed"]
print("failed" if failed else "attached", failed, flush=True)
while True:
    time.sleep(60)
