#!/usr/bin/env bash
# Prints the path of the Copilot CLI `make demo` runs, installing it only
# when needed:
#   - `copilot` on PATH at the version e2e/node/package.json pins (the one the
#     demo's Node SDK is pinned with): that one, nothing installed;
#   - otherwise (none on PATH, or another version, which the pinned SDK may
#     not speak to): the pinned CLI, installed from npm by e2e/install.sh
#     into e2e/node/node_modules when not there yet.
# Progress goes to stderr; only the path goes to stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pinned=$(sed -n 's/^ *"@github\/copilot": *"\([^"]*\)".*/\1/p' "$root/e2e/node/package.json")
[[ -n "$pinned" ]] || { echo "demo-cli.sh: no @github/copilot version in e2e/node/package.json" >&2; exit 1; }

if found=$(command -v copilot 2>/dev/null); then
  have=$("$found" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1 || true)
  if [[ "$have" == "$pinned" ]]; then
    echo "$found"
    exit 0
  fi
  echo "demo-cli.sh: copilot on PATH ($found) is version ${have:-unknown}; the demo's Node SDK is pinned with CLI $pinned: using that one from npm" >&2
fi
bash "$root/e2e/install.sh" >&2
echo "$root/e2e/node/node_modules/.bin/copilot"
