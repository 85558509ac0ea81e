#!/usr/bin/env bash
# The Debian packages only the tests need: chromium, which the playground's browser tests drive
# through Playwright (never `playwright install`: that downloads a browser). The cgroup v2 VM
# installs its own (scripts/cgroup2-vm).
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "the browser tests need chromium (run: sudo apt-get install chromium)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium
