#!/usr/bin/env bash
# Runs INSIDE the kprobe VM (started by scripts/test-kernel.sh): the kernel suite,
# with its exit status written to the shared run directory for the host to read.
#   guest.sh RUNDIR [pytest arguments]
set -u
rundir=$1
shift
cat /proc/uptime >"$rundir/booted"
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1

# In the guest everything live must work: a skip would hide a broken kprobe path.
export KTUI_IN_KERNEL_VM=1 KTUI_REQUIRE_LIVE=1 PYTHONDONTWRITEBYTECODE=1
# The guest's /root is read-only; ktui's cache and data live in guest memory.
export HOME=/run/ktui-home KTUI_CACHE_DIR=/run/ktui-home/cache KTUI_DATA_DIR=/run/ktui-home/data
# The run directory is the host's, shared over 9p: the test of recordings on network filesystems writes there.
export KTUI_VM_SHARE=$rundir
mkdir -p "$HOME"
# The guest kernel has its own headers (/lib/modules/$(uname -r)/build): use them.
unset BCC_KERNEL_SOURCE
ip link set lo up 2>/dev/null

.venv/bin/python -m pytest tests/kernel -p no:cacheprovider \
    --junitxml="$rundir/junit.xml" "$@"
status=$?
echo "$status" >"$rundir/status.tmp" && mv "$rundir/status.tmp" "$rundir/status"
sync
exit "$status"
