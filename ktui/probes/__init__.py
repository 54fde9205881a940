"""The probe model and the ways people write probes (bpftrace names, kprobe_events, SystemTap)."""
