#!/usr/bin/env bash
# The Debian packages only the tests need: chromium, which the playground's browser tests drive
# through Playwright (never `playwright install`: that downloads a browser). The cgroup v2 VM
# installs its own (scripts/cgroup2-vm).
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
exec "$(dirname "$0")/apt-install" "the browser tests" chromium
