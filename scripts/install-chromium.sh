#!/usr/bin/env bash
# Installs headless Chromium (Debian package `chromium`) for the status page's
# browser test (cmd/rpcproxy/statuspage_test.go). Idempotent: does nothing when a chromium
# binary is on PATH. Uses sudo only when not root, and only if sudo exists.
# Without apt (another distribution, macOS), or when the install fails (no
# network), it says so and exits 0: the browser test then skips with a clear
# message. With E2E_REQUIRED=1 a failed install fails.
set -euo pipefail

give_up() {
  echo "install-chromium.sh: $1; the status page's browser test will skip" >&2
  if [[ ${E2E_REQUIRED:-} == 1 ]]; then exit 1; fi
  exit 0
}

for bin in chromium chromium-browser google-chrome; do
  if command -v "$bin" >/dev/null 2>&1; then
    echo "install-chromium.sh: up to date ($(command -v "$bin"))"
    exit 0
  fi
done

if ! command -v apt-get >/dev/null 2>&1; then
  give_up "no apt-get: install Chromium yourself"
fi
as_root=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    give_up "not root and no sudo: install the chromium package yourself"
  fi
  as_root=(sudo)
fi

echo "install-chromium.sh: apt-get install chromium"
export DEBIAN_FRONTEND=noninteractive
# apt's lock may be held by another install for a while: wait for it.
apt_get=("${as_root[@]}" apt-get -o DPkg::Lock::Timeout=300 -y -q)
if ! "${apt_get[@]}" install --no-install-recommends chromium; then
  # A stale package index: refresh it once and try again.
  "${apt_get[@]}" update || true
  "${apt_get[@]}" install --no-install-recommends chromium || give_up "apt-get install chromium failed"
fi
