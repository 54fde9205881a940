"""The parts of the live engine (assembled by ktui/sources/live.py): loads the compiled program, attaches it, drains its ring buffers
by mmap into numpy, keeps counters, stacks and histograms, feeds the panes and the recorder.

    source = ktui.sources.live.LiveSource(probes, target=TargetProcess(pid=1234), recorder=writer)
    source.start(sink)          # sink(Update) at most ~30 times a second, from the engine's thread
    source.enable_probe(0, False); source.add_probe(probe)
    source.stop()               # detaches everything; the recorder gets the final counters and stacks

Modules, one job each (ktui/sources/live.py assembles them; each says its lock discipline):
  loader.py       compiling, loading and attaching; the probe ids (one lock); on/off, removal, teardown
  unit.py         one loaded BPF object: its program, ids, rings, counters, attachments
  drain.py        the rings read into numpy, delivered counts, events handed to the recorder
  aggregates.py   stacks, histograms, keyed counts from the maps and the records, symbolized (bounded)
  accounting.py   the session's counters: hits = delivered + dropped + filtered; COUNT-by-cpu tables
  keycounts.py    a COUNT action's map read as rows, the largest first
  outbox.py       updates handed to a slow consumer (the post thread's Outbox, the app's Mailbox), merged
  recording.py    the recorder sink attached and detached (`ktui record`, the app's ctrl+r)
  recorder_sink.py  the recorder: its own thread and byte-budgeted queue, detached when it fails
  ringbuf.py      RingReader: a ring's memory mapped, committed records copied out as one array
  ordering.py     acquire/release for the ring reader: plain on x86-64, ordering.c's helper on aarch64
  compiler_memory.py  clang's heap and code pages given back after each compile
  attach.py       one probe's programs attached, a failure told in one true sentence
  counters.py     the kernel's per-CPU counters plus delivered counts
  stacks.py       kernel frames from /proc/kallsyms, user frames from /proc/PID/maps + ELF symbols
  histograms.py   log2/linear histogram maps as buckets, with the compiler's slot conventions
  launch.py       a command started held until its probes are attached (`-- COMMAND`)
  cleanup.py      SIGTERM/SIGHUP behave as Ctrl-C; every running source stops at exit
"""
