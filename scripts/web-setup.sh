#!/usr/bin/env bash
# The playground's pieces: its pinned browser libraries (marked, DOMPurify, highlight.js), installed
# with `npm ci` from src/agentbox/web/package-lock.json into a git-ignored node_modules that agentbox
# serves, and Debian's chromium, which the browser tests drive through Playwright (never
# `playwright install`: that downloads a browser). Quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
WEB=src/agentbox/web
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "the playground needs these Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
# npm ci only when the lockfile differs from the one last installed.
if ! cmp -s "$WEB/package-lock.json" "$WEB/node_modules/.agentbox-installed-lock.json"; then
  npm ci --prefix "$WEB" --no-audit --no-fund --loglevel=error
  cp "$WEB/package-lock.json" "$WEB/node_modules/.agentbox-installed-lock.json"
fi
