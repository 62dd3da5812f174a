#!/usr/bin/env bash
# make demo: rpcproxy with a managed local pool of 3 headless Copilot CLI
# servers, a local OpenAI-compatible model stub, and a few SDK sessions driven
# through the proxy. Prints where each session landed. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
listen=${DEMO_LISTEN:-127.0.0.1:4321}
admin=${DEMO_ADMIN:-127.0.0.1:9090}
work=$(mktemp -d -t rpcproxy-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The CLI: the one on PATH when it is the pinned version, else the pinned
# npm install under e2e/node (installed now if missing); see demo-cli.sh.
cli=$(bash "$root/scripts/demo-cli.sh")
if [[ "$(command -v copilot 2>/dev/null)" != "$cli" ]]; then
  export PATH="$(dirname "$cli"):$PATH" # rpcproxy --spawn runs `copilot` from PATH
fi
echo "==> copilot CLI: $cli ($("$cli" --version 2>/dev/null | head -1))"
# The demo client's Node SDK; with the full npm install already there (or just
# made) this does nothing.
bash "$root/e2e/install.sh" --sdk-only

# A local model stub, so sessions run offline (BYOK provider).
"$root/bin/modelstub" --listen 127.0.0.1:0 >"$work/stub.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q 'http://' "$work/stub.log" && break; sleep 0.1; done
stub_url=$(grep -o 'http://[0-9.:/a-z]*' "$work/stub.log" | head -1)
echo "==> model stub: $stub_url"

# rpcproxy with a local pool of three headless CLI servers.
"$root/bin/rpcproxy" serve --spawn 3 --listen "$listen" --admin "$admin" --log-level info >"$work/proxy.log" 2>&1 &
pids+=($!)
echo "==> rpcproxy: starting 3 headless CLI servers (the first start unpacks the CLI; this can take a while)"
for _ in $(seq 1200); do
  grep -q 'rpcproxy listening' "$work/proxy.log" && break
  if ! kill -0 "${pids[-1]}" 2>/dev/null; then cat "$work/proxy.log"; echo "rpcproxy exited" >&2; exit 1; fi
  sleep 0.1
done
grep -q 'rpcproxy listening' "$work/proxy.log" || { cat "$work/proxy.log"; echo "rpcproxy did not start" >&2; exit 1; }
echo "==> rpcproxy listening on $listen; status page: http://$admin/ (metrics: http://$admin/metrics); pool:"
grep 'child up' "$work/proxy.log" | sed -E 's/.*child=([0-9]+) addr=([^ ]+) pid=([0-9]+).*/      server \1: copilot --headless on \2 (pid \3)/' | sort

echo "==> driving SDK sessions through rpcproxy (Node SDK, RuntimeConnection.forUri(\"$listen\"))"
PROXY_ADDR="$listen" STUB_URL="$stub_url" node "$root/e2e/node/demo.mjs"

echo "==> where each session landed (from rpcproxy's log):"
grep 'session placed' "$work/proxy.log" | sed -E 's/.*session=([^ ]+) backend=([^ ]+).*/      \1  ->  \2/' | sort -u
echo "==> sessions per server:"
grep 'session placed' "$work/proxy.log" | grep -o 'backend=[^ ]*' | sort | uniq -c | sed 's/^/     /'
echo "==> the pool as the admin API sees it (rpcproxy status --admin $admin):"
"$root/bin/rpcproxy" status --admin "$admin" | sed 's/^/     /'
if [[ -n "${DEMO_HOLD:-}" ]]; then
  echo "==> DEMO_HOLD is set: the pool stays up for the status page at http://$admin/ until Ctrl-C"
  wait "${pids[-1]}"
fi
