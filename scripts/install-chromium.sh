#!/usr/bin/env bash
# Installs headless Chromium (Debian package `chromium`) for the status page's
# browser test (internal/admin/ui). Idempotent: does nothing when a chromium
# binary is on PATH. Uses sudo only when not root, and only if sudo exists.
# Never fails the build: without apt (another distribution, macOS) it says so
# and the browser test skips (unless E2E_REQUIRED=1).
set -euo pipefail

for bin in chromium chromium-browser google-chrome; do
  if command -v "$bin" >/dev/null 2>&1; then
    echo "install-chromium.sh: up to date ($(command -v "$bin"))"
    exit 0
  fi
done

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium.sh: no apt-get; install Chromium yourself for the status page test" >&2
  exit 0
fi
as_root=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-chromium.sh: not root and no sudo; install the chromium package yourself" >&2
    exit 0
  fi
  as_root=(sudo)
fi

echo "install-chromium.sh: apt-get install chromium"
export DEBIAN_FRONTEND=noninteractive
# apt's lock may be held by another install for a while: wait for it.
apt_get=("${as_root[@]}" apt-get -o DPkg::Lock::Timeout=300 -y -q)
if ! "${apt_get[@]}" install --no-install-recommends chromium; then
  # A stale package index: refresh it once and try again.
  "${apt_get[@]}" update
  "${apt_get[@]}" install --no-install-recommends chromium
fi
