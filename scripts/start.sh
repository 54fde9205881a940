#!/usr/bin/env bash
# The README's first command: set up (idempotent, fast when done), then start ktui.
# As root it traces this kernel live; otherwise ktui opens its demo recording and says why.
#   sudo ./scripts/start.sh [ktui arguments]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$repo/scripts/setup.sh"
exec "$repo/.venv/bin/ktui" "$@"
