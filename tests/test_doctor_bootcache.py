"""Doctor's per-boot answers: reused within a boot, asked again with --refresh or for another key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def doctor(cache: Path, *extra: str) -> dict:
    env = {**os.environ, "KTUI_CACHE_DIR": str(cache)}
    r = subprocess.run([sys.executable, "-m", "ktui", "doctor", "--json", "--no-compile", *extra], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_stable_checks_are_kept_per_boot_and_refresh_asks_again(tmp_path):
    from ktui.doctor import bootcache

    cache = tmp_path / "cache"
    first = doctor(cache)
    kept = cache / bootcache.FILE
    assert kept.is_file() and (kept.stat().st_mode & 0o777) == 0o600
    data = json.loads(kept.read_text())
    assert data["key"]["boot_id"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert set(data["checks"]) == set(bootcache.STABLE)
    assert {k: first[k] for k in bootcache.STABLE} == data["checks"]
    # prove the kept answer is what the second run shows: mark it, and see the mark
    data["checks"]["fentry"]["why"] = "MARKED: kept from earlier in this boot"
    kept.write_text(json.dumps(data))
    second = doctor(cache)
    assert second["fentry"]["why"] == "MARKED: kept from earlier in this boot"
    assert second["root"] == first["root"] and second["tracefs"] == first["tracefs"]  # never kept
    third = doctor(cache, "--refresh")
    assert third["fentry"] == first["fentry"]
    assert "MARKED" not in kept.read_text()


def test_another_boot_or_user_is_asked_again(tmp_path):
    from ktui.doctor import bootcache

    cache = tmp_path / "cache"
    first = doctor(cache)
    kept = cache / bootcache.FILE
    data = json.loads(kept.read_text())
    data["key"]["boot_id"] = "00000000-0000-0000-0000-000000000000"
    data["checks"]["fentry"]["why"] = "MARKED"
    kept.write_text(json.dumps(data))
    assert doctor(cache)["fentry"] == first["fentry"]
    data = json.loads(kept.read_text())
    data["checks"]["kprobe"]["why"] = "MARKED"
    kept.write_text(json.dumps(data))
    os.chmod(kept, 0o666)  # writable by others: never trusted
    assert doctor(cache)["kprobe"] == first["kprobe"]


def test_damaged_kept_answers_are_ignored(tmp_path):
    from ktui.doctor import bootcache

    cache = tmp_path / "cache"
    first = doctor(cache)
    kept = cache / bootcache.FILE
    for junk in ("{", "[]", '{"key": 1}', "9" * 5000, "[" * 100000):
        kept.write_text(junk)
        os.chmod(kept, 0o600)
        again = doctor(cache)
        assert {k: again[k] for k in bootcache.STABLE} == {k: first[k] for k in bootcache.STABLE}
