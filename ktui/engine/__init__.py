"""The live engine: loads the compiled program, attaches it, drains its ring buffers
by mmap into numpy, keeps counters, stacks and histograms, feeds the panes and the recorder."""
