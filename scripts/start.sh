#!/usr/bin/env bash
# The README's first command: set up (idempotent, fast when done), then start ktui.
# As root it traces this kernel live; otherwise ktui opens its demo recording and says why.
#   ./scripts/start.sh [ktui arguments]
# Not root: the script runs itself again through sudo when sudo exists (tracing needs root);
# KTUI_NO_SUDO=1 keeps it as the current user (ktui then opens its demo and says why).
set -euo pipefail
if [[ $EUID -ne 0 && -z ${KTUI_NO_SUDO:-} ]] && command -v sudo >/dev/null; then
    exec sudo -- "$0" "$@"
fi
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$repo/scripts/setup.sh"
exec "$repo/.venv/bin/ktui" "$@"
