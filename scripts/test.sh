#!/usr/bin/env bash
# The README's second command: set up (idempotent), run the whole test suite on this
# machine's kernel, then the kprobe VM suite (scripts/test-kernel.sh) where the
# machine can run it. Exits non-zero when anything failed.
#   ./scripts/test.sh [pytest arguments for the host suite; default: tests]
# Not root: the script runs itself again through sudo when sudo exists (tracing needs root);
# KTUI_NO_SUDO=1 keeps it as the current user (ktui then opens its demo and says why).
# CI=true implies KTUI_REQUIRE_LIVE=1: live tests and the VM suite must run, not skip.
# KTUI_TEST_KERNEL=0 leaves the VM suite out (refused when KTUI_REQUIRE_LIVE=1).
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
trap 'rm -rf "$results"' EXIT

say "lint and types: ruff check, mypy (config in pyproject.toml)"
.venv/bin/ruff check --quiet ktui tests bench scripts
lint=$?
.venv/bin/mypy
types=$?
lint_s=$((SECONDS - setup_s))

say "host suite: pytest tests (tests/kernel runs in the VM below)"
(($#)) || set -- tests  # arguments, when given, choose what to run instead of all of tests/
.venv/bin/python -m pytest --ignore=tests/kernel -p no:cacheprovider \
    --junitxml="$results/host.xml" "$@"
host=$?
host_s=$((SECONDS - setup_s - lint_s))
if [[ $host -eq 5 ]]; then
    say "the host suite collected no tests"
    host=0
fi

vm=0
if [[ ${KTUI_TEST_KERNEL:-1} == 0 && ${KTUI_REQUIRE_LIVE:-} != 1 ]]; then
    say "kprobe VM suite left out (KTUI_TEST_KERNEL=0)"
else
    KTUI_VM_JUNIT="$results/vm.xml" "$repo/scripts/test-kernel.sh"
    vm=$?
fi

say "ruff status $lint, mypy status $types, host suite status $host, kprobe VM suite status $vm; seconds: setup $setup_s, lint $lint_s, host suite $host_s, VM suite $((SECONDS - setup_s - lint_s - host_s))"
# One closing line over both suites (pytest's own last line covers only the VM's).
/usr/bin/python3 "$repo/scripts/junit_totals.py" "$results"/*.xml
[[ $lint -eq 0 && $types -eq 0 && $host -eq 0 && $vm -eq 0 ]]
