#!/usr/bin/env bash
# Quickstart on a fresh Debian/Ubuntu machine with Node >= 20: installs what is missing (rsync,
# python3), installs the npm dependencies, then runs the demo (`npm run demo`): a real service,
# a hot deploy, a broken deploy restored automatically, a rollback.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'quickstart: %s\n' "$*"; }
fail() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

# 1. Node >= 20
if ! command -v node >/dev/null 2>&1; then
  fail "node is not installed. Install Node.js 20 or newer (https://nodejs.org/en/download, or your distribution's nodejs >= 20), then run $0 again."
fi
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ! [[ "${node_major}" =~ ^[0-9]+$ ]] || [ "${node_major}" -lt 20 ]; then
  fail "hotctl needs Node.js >= 20; this is $(node --version). Install a newer Node.js (e.g. from https://nodejs.org), then run $0 again."
fi
command -v npm >/dev/null 2>&1 || fail "npm is not installed (it comes with Node.js; on Debian: apt-get install npm)."
say "node $(node --version)"

# 2. rsync and python3
missing=()
command -v rsync >/dev/null 2>&1 || missing+=(rsync)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    fail "missing: ${missing[*]}. Install them as root (apt-get install -y ${missing[*]}), then run $0 again."
  fi
  if ! command -v apt-get >/dev/null 2>&1 \
    || ! ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    || ! ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; then
    fail "could not install ${missing[*]}. Install them yourself (Debian/Ubuntu: sudo apt-get install -y ${missing[*]}), then run $0 again."
  fi
fi
say "$(rsync --version | head -1)"
say "$(python3 --version)"

# 3. npm dependencies, then the demo
if [ -f package-lock.json ]; then
  if ! npm ci --no-audit --no-fund; then
    # e.g. a lock file out of sync with package.json: install without rewriting either file.
    say "npm ci failed; falling back to npm install --no-save"
    npm install --no-audit --no-fund --no-save
  fi
else
  npm install --no-audit --no-fund
fi
npm run demo
