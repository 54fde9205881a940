"""The ground everything stands on: importing the distribution's BCC, kernel headers, kernel facts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ktui import headers, kernel
from ktui.bccload import find_bcc_dir

PY = sys.executable


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    return subprocess.run([PY, "-c", code], capture_output=True, text=True, env=full_env, timeout=120)


@pytest.mark.skipif(find_bcc_dir() is None, reason="the distribution's BCC (python3-bpfcc) is not installed")
def test_bcc_comes_from_the_distribution_without_system_site_packages():
    code = (
        "import json, sys\n"
        "from ktui.bccload import load_bcc\n"
        "bcc = load_bcc()\n"
        "print(json.dumps({'file': bcc.__file__, 'bpf': hasattr(bcc, 'BPF'),"
        " 'syspath': [p for p in sys.path if ('dist-packages' in p or 'site-packages' in p) and not p.startswith(sys.prefix)]}))\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["bpf"] is True
    assert info["file"].startswith(find_bcc_dir())
    assert info["syspath"] == [], "the system's site-packages must not be on the venv's path"


def test_missing_bcc_is_one_sentence(tmp_path):
    code = (
        "from ktui.bccload import load_bcc, BccUnavailable\n"
        "try:\n    load_bcc()\nexcept BccUnavailable as e:\n    print('MSG', e)\n"
    )
    result = _run(code, KTUI_BCC_PATH=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("MSG BCC is not installed")
    assert "python3-bpfcc" in result.stdout and "replaying recordings still work" in result.stdout
    assert "Traceback" not in result.stderr


def test_generic_headers_are_merged_in_the_cache_never_in_lib_modules(tmp_path, monkeypatch):
    pairs = headers._generic_pairs()
    if not pairs:
        pytest.skip("no distribution kernel headers installed (linux-headers-amd64)")
    _, common, arch = pairs[0]
    monkeypatch.setenv("KTUI_CACHE_DIR", str(tmp_path))
    lib_modules = Path("/lib/modules") / os.uname().release
    before = lib_modules.exists()
    tree = headers._merged_tree(common, arch)
    assert tree.is_relative_to(tmp_path)
    # Both halves are visible in the one tree: arch-specific generated headers and common ones.
    assert (tree / "include" / "linux" / "sched.h").exists()
    assert (tree / "include" / "generated").exists() or (tree / "arch").exists()
    assert (tree / ".ktui-complete").is_file()
    assert lib_modules.exists() == before
    # A second call reuses the finished tree.
    assert headers._merged_tree(common, arch) == tree


def test_headers_choice_is_described_honestly(monkeypatch):
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)
    found = headers.find_headers()
    if found is None:
        pytest.skip("no kernel headers of any kind here")
    text = found.describe()
    if found.kind == "generic":
        assert not found.matches_kernel
        assert "struct layouts may not be" in text
    else:
        assert found.matches_kernel


def test_missing_headers_is_one_sentence(monkeypatch):
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)
    monkeypatch.setattr(headers, "_chosen", None)
    monkeypatch.setattr(headers, "find_headers", lambda: None)
    with pytest.raises(headers.HeadersUnavailable) as err:
        headers.ensure_headers()
    assert "no kernel headers" in str(err.value) and "replay still work" in str(err.value)


def test_kernel_identity_is_this_kernel():
    ident = kernel.kernel_identity()
    assert ident.release == os.uname().release
    assert ident.build_id and all(c in "0123456789abcdef:-btfsha" for c in ident.build_id.replace("btf-sha256:", ""))
    assert kernel.KernelIdentity.from_dict(ident.to_dict()) == ident


def test_build_id_note_parser(tmp_path):
    desc = bytes(range(20))
    note = (4).to_bytes(4, "little") + len(desc).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"GNU\0" + desc
    other = (4).to_bytes(4, "little") + (4).to_bytes(4, "little") + (1).to_bytes(4, "little") + b"Xen\0" + b"\0" * 4
    path = tmp_path / "notes"
    path.write_bytes(other + note)
    assert kernel._build_id_from_notes(str(path)) == desc.hex()
    path.write_bytes(b"\x01\x02")  # truncated: no build id, no exception
    assert kernel._build_id_from_notes(str(path)) is None


def test_possible_cpus_counts_ranges():
    assert kernel.possible_cpus() >= os.cpu_count() >= 1


def test_cli_version_and_unknown_command():
    ok = subprocess.run([PY, "-m", "ktui", "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("ktui ")
    bad = subprocess.run([PY, "-m", "ktui", "no-such-command"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and "Traceback" not in bad.stderr
