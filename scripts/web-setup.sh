#!/usr/bin/env bash
# The playground's pinned browser libraries (marked, DOMPurify, highlight.js), installed with
# `npm ci` from src/agentbox/web/package-lock.json into a git-ignored node_modules that agentbox
# serves. Quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
WEB=src/agentbox/web
command -v npm >/dev/null 2>&1 || scripts/apt-install "the playground" npm
# npm ci only when the lockfile differs from the one last installed.
if ! cmp -s "$WEB/package-lock.json" "$WEB/node_modules/.agentbox-installed-lock.json"; then
  npm ci --prefix "$WEB" --no-audit --no-fund --loglevel=error
  cp "$WEB/package-lock.json" "$WEB/node_modules/.agentbox-installed-lock.json"
fi
