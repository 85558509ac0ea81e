#!/usr/bin/env bash
# Installs the Debian packages agentbox needs when they are missing: bubblewrap (default sandbox),
# runsc (gVisor, AGENTBOX_SANDBOX=gvisor and the security suite's second backend), python3-venv,
# util-linux (setpriv, prlimit, unshare, mount). The seccomp filter is compiled by agentbox itself
# (sandbox/seccomp.py), so no libseccomp binding is needed.
set -euo pipefail
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v runsc >/dev/null 2>&1 || [ -x /usr/bin/runsc ] || missing+=(runsc)
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
[ ${#missing[@]} -eq 0 ] && exit 0
exec "$(dirname "$0")/apt-install" agentbox "${missing[@]}"
