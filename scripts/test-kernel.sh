#!/usr/bin/env bash
# The kprobe VM suite: tests/kernel run inside QEMU on Debian's own kernel (it has
# kprobes; the host's kernel does not), booted by virtme-ng on a copy-on-write view
# of this machine, so the same .venv and BCC run inside.
#
#   sudo scripts/test-kernel.sh [pytest arguments for the guest, e.g. -k ip_rcv]
#
# Exit status: the guest pytest's. When the suite cannot run at all (no root, QEMU
# or the kernel package unavailable, the VM does not start) it prints one reason and
# exits 0 (skipped), or 1 when KTUI_REQUIRE_LIVE=1 (CI), where a skip is a failure.
#
# Environment: KTUI_VM_NO_SETUP=1 installs nothing; KTUI_VM_KERNEL=PATH boots that
# image; KTUI_VNG=PATH uses that vng; KTUI_VM_TIMEOUT=seconds (default 1200) ends a
# hung VM; KTUI_VM_MEMORY (default 2G), KTUI_VM_CPUS (default 2); KTUI_VM_JUNIT=PATH
# receives the guest's JUnit XML report.
set -uo pipefail

if [[ $EUID -ne 0 && -z ${KTUI_NO_SUDO:-} ]] && command -v sudo >/dev/null; then
    exec sudo -- "$0" "$@"  # QEMU, apt and kprobes need root
fi
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo" || exit 1

say() { echo "test-kernel: $*" >&2; }
cannot_run() {
    if [[ ${KTUI_REQUIRE_LIVE:-} == 1 ]]; then
        say "FAILED: the kprobe VM suite cannot run: $*"
        exit 1
    fi
    say "SKIPPED: the kprobe VM suite cannot run: $*"
    exit 0
}

if [[ $EUID -ne 0 ]]; then
    cannot_run "it needs root (the kernel image in /boot is readable by root only); run it with sudo."
fi

if [[ ${KTUI_VM_NO_SETUP:-} != 1 ]]; then
    "$repo/scripts/setup.sh" --kernel-vm || cannot_run "installing QEMU, Debian's kernel with its headers and virtme-ng failed (see above)."
fi

# Which kernel: the one linux-image-<flavour> depends on, e.g. linux-image-6.1.0-56-amd64.
if [[ -n ${KTUI_VM_KERNEL:-} ]]; then
    vmlinuz=$KTUI_VM_KERNEL
    krel=${vmlinuz##*/vmlinuz-}
else
    flavour=$(dpkg --print-architecture 2>/dev/null)
    # shellcheck source=/dev/null
    [[ $(. /etc/os-release 2>/dev/null && echo "${ID:-}") == ubuntu ]] && flavour=generic
    krel=$(dpkg-query -W -f='${Depends}' "linux-image-$flavour" 2>/dev/null \
        | grep -o 'linux-image-[^ ,]*' | head -1 | sed 's/^linux-image-//')
    [[ -n $krel ]] || cannot_run "the package linux-image-$flavour is not installed."
    vmlinuz=/boot/vmlinuz-$krel
fi
[[ -r $vmlinuz ]] || cannot_run "no readable kernel image at $vmlinuz."
if [[ -z ${KTUI_VM_KERNEL:-} ]]; then
    [[ -d /lib/modules/$krel/build/include ]] \
        || cannot_run "kernel $krel has no headers at /lib/modules/$krel/build (install linux-headers-$krel)."
    grep -q '^CONFIG_KPROBES=y' "/boot/config-$krel" 2>/dev/null \
        || cannot_run "kernel $krel is built without CONFIG_KPROBES."
fi
command -v qemu-system-x86_64 >/dev/null || cannot_run "QEMU (qemu-system-x86_64) is not installed."
vng=${KTUI_VNG:-$repo/.venv-vng/bin/vng}
[[ -x $vng ]] || cannot_run "virtme-ng is not installed at $vng (scripts/setup.sh --kernel-vm installs it)."
[[ -x $repo/.venv/bin/python ]] || cannot_run ".venv is missing (run scripts/setup.sh)."

# The guest writes its exit status here: vng's own exit status does not carry it.
rundir=$(mktemp -d "${TMPDIR:-/tmp}/ktui-vm.XXXXXX")
chmod 700 "$rundir"
guest_cmd="$repo/tests/kernel/guest.sh $(printf '%q ' "$rundir" "$@")"

say "booting $vmlinuz under QEMU (software emulation); logs in $rundir"
start=$(date +%s)
# KVM guests hang on these machines: software emulation only. The repository is an
# overlay in the guest (writable there, untouched here); only $rundir is shared.
PATH="$(dirname "$vng"):$PATH" timeout -k 30 "${KTUI_VM_TIMEOUT:-1200}" \
    "$vng" --run "$vmlinuz" --disable-kvm --user root \
    --cpus "${KTUI_VM_CPUS:-2}" --memory "${KTUI_VM_MEMORY:-2G}" \
    --rwdir="$rundir" --overlay-rwdir="$repo" --cwd "$repo" \
    --exec "$guest_cmd" </dev/null 2>&1 | tee "$rundir/console.log"
vng_status=${PIPESTATUS[0]}
elapsed=$(($(date +%s) - start))

if [[ ! -f $rundir/booted ]]; then
    tail -n 20 "$rundir/console.log" >&2
    if [[ $vng_status -eq 124 ]]; then
        cannot_run "the VM did not start within ${KTUI_VM_TIMEOUT:-1200} s."
    fi
    cannot_run "the VM did not start (vng exited with status $vng_status; its last lines are above)."
fi
if [[ ! -f $rundir/status ]]; then
    say "FAILED: the VM stopped before its tests finished (vng status $vng_status$([[ $vng_status -eq 124 ]] && echo ', timed out'))."
    exit 1
fi
status=$(cat "$rundir/status")
[[ -n ${KTUI_VM_JUNIT:-} && -f $rundir/junit.xml ]] && cp "$rundir/junit.xml" "$KTUI_VM_JUNIT"
say "guest boot took $(cut -d' ' -f1 "$rundir/booted") s of guest uptime; whole VM run ${elapsed} s; guest pytest status $status"
[[ $status =~ ^[0-9]+$ ]] || { say "FAILED: unreadable status '$status'"; exit 1; }
rm -rf "$rundir"
exit "$status"
