"""The parts of the live engine (assembled by ktui/sources/live.py): loads the compiled program, attaches it, drains its ring buffers
by mmap into numpy, keeps counters, stacks and histograms, feeds the panes and the recorder.

    source = ktui.sources.live.LiveSource(probes, target=TargetProcess(pid=1234), recorder=writer)
    source.start(sink)          # sink(Update) at most ~30 times a second, from the engine's thread
    source.enable_probe(0, False); source.add_probe(probe)
    source.stop()               # detaches everything; the recorder gets the final counters and stacks

Modules, one job each:
  ringbuf.py      RingReader: a ring's memory mapped, committed records copied out as one array
  attach.py       one probe's programs attached, a failure told in one true sentence
  counters.py     the kernel's per-CPU counters plus delivered counts: hits = delivered + dropped + filtered
  stacks.py       kernel frames from /proc/kallsyms, user frames from /proc/PID/maps + ELF symbols
  histograms.py   log2/linear histogram maps as buckets, with the compiler's slot conventions
  launch.py       a command started held until its probes are attached (`-- COMMAND`)
  cleanup.py      SIGTERM/SIGHUP behave as Ctrl-C; every running source stops at exit
"""
