#!/usr/bin/env bash
# The README's second command: set up (idempotent), run the whole test suite on this
# machine's kernel, then the kprobe VM suite (scripts/test-kernel.sh) where the
# machine can run it. Exits non-zero when anything failed.
#   ./scripts/test.sh [pytest arguments for the host suite; default: tests]
# Not root: the script runs itself again through sudo when sudo exists (tracing needs root);
# KTUI_NO_SUDO=1 keeps it as the current user (ktui then opens its demo and says why).
# CI=true implies KTUI_REQUIRE_LIVE=1: live tests and the VM suite must run, not skip.
# KTUI_TEST_KERNEL=0 leaves the VM suite out (refused when KTUI_REQUIRE_LIVE=1).
# The VM suite runs alongside the lint and the host suite: its guest has a kernel of its own (no
# host test sees its probes), QEMU runs niced (the host's timing-bound tests keep the CPU they
# had; the VM takes what they leave), and its output is printed after the host suite's.
# KTUI_TEST_SERIAL=1 runs it after the host suite instead.
set -uo pipefail

if [[ $EUID -ne 0 && -z ${KTUI_NO_SUDO:-} ]] && command -v sudo >/dev/null; then
    exec sudo -- "$0" "$@"
fi
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo" || exit 1
say() { echo "test: $*" >&2; }

[[ ${CI:-} == true ]] && export KTUI_REQUIRE_LIVE=1
SECONDS=0
"$repo/scripts/setup.sh" || { say "setup failed"; exit 1; }
setup_s=$SECONDS

results=$(mktemp -d /tmp/ktui-test.XXXXXX)
vm_pid=
# An interrupted run takes its VM with it: the VM runs in a session of its own (the session, not
# a process group: timeout(1) gives QEMU a process group of its own).
trap '[[ -n $vm_pid ]] && pkill -TERM -s "$vm_pid"; rm -rf "$results"' EXIT

vm_wanted=1
[[ ${KTUI_TEST_KERNEL:-1} == 0 && ${KTUI_REQUIRE_LIVE:-} != 1 ]] && vm_wanted=0
if ((vm_wanted)) && [[ ${KTUI_TEST_SERIAL:-} != 1 ]]; then
    say "kprobe VM suite: started now, alongside; its output follows the host suite's"
    # A niced VM may wait for the CPU while the host suite runs: its hung-VM limit allows for that.
    # shellcheck disable=SC2016  # $1, $2 and SECONDS are the inner shell's
    KTUI_VM_TIMEOUT=${KTUI_VM_TIMEOUT:-2400} KTUI_VM_JUNIT="$results/vm.xml" \
        setsid --wait nice -n 10 bash -c 'start=$SECONDS; "$1"; status=$?; echo $((SECONDS - start)) >"$2"; exit $status' \
        vm "$repo/scripts/test-kernel.sh" "$results/vm.seconds" >"$results/vm.log" 2>&1 </dev/null &
    vm_pid=$!
fi

say "lint and types: ruff check, mypy (config in pyproject.toml)"
.venv/bin/ruff check --quiet ktui tests bench scripts
lint=$?
.venv/bin/mypy
types=$?
lint_s=$((SECONDS - setup_s))

say "host suite: pytest tests (tests/kernel runs in the VM below)"
(($#)) || set -- tests  # arguments, when given, choose what to run instead of all of tests/
# --durations: where the time goes, for keeping the whole run well under 30 minutes.
.venv/bin/python -m pytest --ignore=tests/kernel -p no:cacheprovider --durations=25 --durations-min=5 \
    --junitxml="$results/host.xml" "$@"
host=$?
host_s=$((SECONDS - setup_s - lint_s))
if [[ $host -eq 5 ]]; then
    say "the host suite collected no tests"
    host=0
fi

vm=0
vm_start=$SECONDS
alongside=
if ((!vm_wanted)); then
    say "kprobe VM suite left out (KTUI_TEST_KERNEL=0)"
elif [[ -n $vm_pid ]]; then
    say "kprobe VM suite: waiting for it"
    wait "$vm_pid"
    vm=$?
    vm_pid=
    alongside=" (alongside the host suite; waited $((SECONDS - vm_start)) s after it)"
    cat "$results/vm.log"
else
    KTUI_VM_JUNIT="$results/vm.xml" "$repo/scripts/test-kernel.sh"
    vm=$?
    echo $((SECONDS - vm_start)) >"$results/vm.seconds"
fi
vm_s=$(cat "$results/vm.seconds" 2>/dev/null || echo 0)

say "ruff status $lint, mypy status $types, host suite status $host, kprobe VM suite status $vm; seconds: setup $setup_s, lint $lint_s, host suite $host_s, VM suite $vm_s$alongside; whole run $SECONDS"
# One closing line over both suites (pytest's own last line covers only the VM's).
/usr/bin/python3 "$repo/scripts/junit_totals.py" "$results"/*.xml
[[ $lint -eq 0 && $types -eq 0 && $host -eq 0 && $vm -eq 0 ]]
