#!/usr/bin/env bash
# Installs Prometheus and promtool (Debian package `prometheus`) for the
# metrics tests, if they are not on PATH already. Idempotent. A machine
# without apt, or where the install fails, gets a warning: the tests that
# need them then skip (or fail with E2E_REQUIRED=1).
set -uo pipefail
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-prometheus: no apt-get here; the Prometheus tests will skip" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
if ! { $sudo apt-get install -y -q prometheus >/dev/null 2>&1 ||
       { $sudo apt-get update -q >/dev/null 2>&1 && $sudo apt-get install -y -q prometheus >/dev/null; }; }; then
  echo "install-prometheus: apt-get install prometheus failed; the Prometheus tests will skip" >&2
  exit 0
fi
# The package starts a system service; the tests run their own server.
$sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
echo "install-prometheus: $(prometheus --version 2>&1 | head -1)"
