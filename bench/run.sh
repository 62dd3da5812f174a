#!/usr/bin/env bash
# The rpcproxy load bench (`make bench`): installs HAProxy if missing, builds
# the binaries, runs the micro-benchmarks, then bench/cmd/benchrun, which
# plays the same load directly, through rpcproxy and through HAProxy. It
# replaces bench/results/latest.{md,json,svg} with the run's full results and
# appends a row of headline figures to bench/results/history.md (older runs
# keep only that row).
#
# Environment: BENCH_REPS (default 3), BENCH_SCALE (multiplies every window,
# default 1), BENCH_NO_HAPROXY=1 (skip HAProxy), BENCH_NO_MICRO=1 (skip the
# micro-benchmarks), BENCH_CONNS_PER_BACKEND=N (run rpcproxy with
# upstream.connections_per_backend = N; unset: the proxy's default).
# Other arguments are passed to benchrun (see `go run ./bench/cmd/benchrun -h`:
# --rpcproxy-config FILE, --rpcproxy-arg ARG, …).
set -euo pipefail

cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
GO="${GO:-go}"
start=$(date +%s)
say() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# HAProxy, the connection-level yardstick.
haproxy_flag=()
if [[ "${BENCH_NO_HAPROXY:-}" == 1 ]]; then
	haproxy_flag=(--haproxy "")
elif ! command -v haproxy >/dev/null 2>&1; then
	say "installing haproxy with apt-get"
	sudo=()
	if [[ $(id -u) != 0 ]] && command -v sudo >/dev/null 2>&1; then sudo=(sudo -n); fi
	if ! { "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq haproxy; } >&2; then
		say "could not install haproxy: the haproxy mode is skipped"
		haproxy_flag=(--haproxy "")
	fi
fi

# Idle connections need two descriptors each in the proxy: take what we may.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
say "open files limit $(ulimit -n)"

say "building"
mkdir -p bin bench/results/tmp
"$GO" build -o bin/rpcproxy ./cmd/rpcproxy
"$GO" build -o bin/fakecli ./cmd/fakecli
"$GO" build -o bin/benchrun ./bench/cmd/benchrun

micro_flag=()
if [[ "${BENCH_NO_MICRO:-}" != 1 ]]; then
	micro="bench/results/tmp/micro-$(date -u +%Y%m%dT%H%M%SZ).txt"
	say "micro-benchmarks -> $micro"
	"$GO" test -run '^$' -bench . -benchmem -benchtime 200ms ./bench/ ./internal/frame/ | tee "$micro" >&2
	micro_flag=(--micro "$micro")
fi

cpb_flag=()
if [[ -n "${BENCH_CONNS_PER_BACKEND:-}" ]]; then
	cpb_flag=(--connections-per-backend "$BENCH_CONNS_PER_BACKEND")
fi

say "load bench"
./bin/benchrun --bin bin --out bench/results --reps "${BENCH_REPS:-3}" --scale "${BENCH_SCALE:-1}" \
	"${haproxy_flag[@]}" "${micro_flag[@]}" "${cpb_flag[@]}" "$@" >/dev/null
sed -n '/^## Budget/,/^## Scenario/{/^## Scenario/d;/^!\[/d;p}' bench/results/latest.md >&2
tail -n 1 bench/results/history.md >&2
say "done in $(( $(date +%s) - start ))s: bench/results/latest.md, a row in bench/results/history.md"
