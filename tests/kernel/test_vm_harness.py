"""The VM itself: the kernel under test has kprobes, BTF and its own headers, and
ktui's BCC loader works there. If these fail, every other kernel test is moot."""

from __future__ import annotations

import os
from pathlib import Path


def test_kernel_has_kprobe_events(tracefs):
    assert (tracefs / "kprobe_events").is_file()
    assert (tracefs / "uprobe_events").is_file()
    assert Path("/sys/kernel/btf/vmlinux").is_file()


def test_bcc_loads_and_headers_are_the_guest_kernels_own():
    from ktui.bccload import load_bcc
    from ktui.headers import ensure_headers

    assert hasattr(load_bcc(), "BPF")
    headers = ensure_headers()
    assert headers.kind == "running", headers.describe()
    assert headers.matches_kernel
    assert Path(headers.path, "include").is_dir()
    assert os.uname().release in headers.path


def test_loopback_is_up():
    flags = int(Path("/sys/class/net/lo/flags").read_text(), 16)
    assert flags & 0x1, "lo is down in the VM"
