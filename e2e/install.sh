#!/usr/bin/env bash
# Installs the end-to-end prerequisites: the pinned Copilot CLI and Node SDK
# (e2e/node/package-lock.json) into e2e/node/node_modules with `npm ci`.
# Idempotent: does nothing when the install matches the lock file and the CLI
# binary is present. Install scripts are skipped (none is needed, and one of
# them would try to download a prebuilt binary).
#
#   e2e/install.sh              the CLI and the Node SDK (what the e2e suite needs)
#   e2e/install.sh --sdk-only   the Node SDK alone, without optional packages (no
#                               CLI binary, no in-process SDK runtime: ~13 MB
#                               instead of ~300 MB), for `make demo` with a copilot
#                               CLI of the pinned version on PATH
set -euo pipefail
sdk_only=false
case "${1:-}" in
  "") ;;
  --sdk-only) sdk_only=true ;;
  *) echo "usage: e2e/install.sh [--sdk-only]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/node"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) platform=linux-x64 ;;
  Linux-aarch64) platform=linux-arm64 ;;
  Darwin-arm64) platform=darwin-arm64 ;;
  Darwin-x86_64) platform=darwin-x64 ;;
  *) echo "e2e/install.sh: unsupported platform $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac
cli="node_modules/@github/copilot-$platform/copilot"
stamp="node_modules/.rpcproxy-e2e-lock.sha256"
sdk_stamp="node_modules/.rpcproxy-e2e-sdk-lock.sha256"
sdk=node_modules/@github/copilot-sdk/package.json
want=$(sha256sum package-lock.json | cut -d' ' -f1)
stamped() { [[ -f "$1" && "$(cat "$1")" == "$want" ]]; }

if [[ -x "$cli" && -f "$sdk" ]] && stamped "$stamp"; then
  echo "e2e/install.sh: up to date ($("$cli" --version 2>/dev/null | head -1))"
  exit 0
fi
if $sdk_only && [[ -f "$sdk" ]] && stamped "$sdk_stamp"; then
  echo "e2e/install.sh: Node SDK up to date"
  exit 0
fi

command -v npm >/dev/null || { echo "e2e/install.sh: npm not found; install Node.js >= 20.19" >&2; exit 1; }
flags=(--ignore-scripts --no-audit --no-fund)
if $sdk_only; then
  echo "e2e/install.sh: npm ci in e2e/node, Node SDK only"
  flags+=(--omit=optional)
else
  echo "e2e/install.sh: npm ci in e2e/node (Copilot CLI ~200 MB)"
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! npm ci "${flags[@]}" --loglevel=error >"$log" 2>&1; then
  # @github/copilot-sdk 1.0.14 lists optional per-platform packages that were
  # never published (darwin-*, win32-*, linux-arm64 …), so the lock file has no
  # entries for them and recent npm refuses `npm ci` as "out of sync". Fall
  # back to `npm install`, which installs exactly the locked versions
  # (integrity-checked); the lock file must come out unchanged.
  if ! grep -q 'can only install packages when your package.json and package-lock.json' "$log"; then
    cat "$log" >&2
    exit 1
  fi
  echo "e2e/install.sh: npm ci refused the lock file (unpublished optional packages); npm install from the lock"
  cp package-lock.json "$log.lock"
  npm install "${flags[@]}" --loglevel=error
  if ! cmp -s package-lock.json "$log.lock"; then
    cp "$log.lock" package-lock.json
    rm -f "$log.lock"
    echo "e2e/install.sh: npm install wanted to change package-lock.json; restored it. Check the pins." >&2
    exit 1
  fi
  rm -f "$log.lock"
fi
[[ -f "$sdk" ]] || { echo "e2e/install.sh: $sdk missing after npm ci" >&2; exit 1; }
if $sdk_only; then
  rm -f "$stamp"
  echo "$want" > "$sdk_stamp"
  echo "e2e/install.sh: installed the Node SDK"
  exit 0
fi
[[ -x "$cli" ]] || { echo "e2e/install.sh: $cli missing after npm ci" >&2; exit 1; }
echo "$want" > "$stamp"
echo "e2e/install.sh: installed $("$cli" --version 2>/dev/null | head -1)"
