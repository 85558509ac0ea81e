#!/usr/bin/env bash
# The Debian packages only the tests need: chromium, which the playground's browser tests drive
# through Playwright (never `playwright install`: that downloads a browser), and a C++ compiler and
# cmake, which build llama.cpp for the real model server's tests; PostgreSQL's server, which the
# tests start in a temporary directory (tests/postgres_server.py). The cgroup v2 VM installs its
# own (scripts/cgroup2-vm).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
exec "$(dirname "$0")/apt-install" "the tests" "${missing[@]}"
