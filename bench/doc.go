// Package bench holds rpcproxy's performance bench: the load generator
// (bench/loadgen), the bench driver (bench/cmd/benchrun, run by bench/run.sh
// and `make bench`) and, in this package's tests, the micro-benchmarks of the
// proxy's per-frame work: route key extraction with the ring lookup, and the
// id rewrite. See bench/README.md.
package bench
