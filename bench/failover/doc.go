// Package failover benchmarks rpcproxy's failover with real processes on
// loopback: how long an SDK-like client waits for a session's next turn when
// the backend holding it is killed (SIGKILL) or frozen (SIGSTOP), with the
// default health settings and tuned ones, and what share of sessions moves
// when a fourth backend joins three.
//
// Everything is in the package's tests; see README.md for what is measured
// and how to run it:
//
//	go test -run '^$' -bench Failover -benchtime 3x ./bench/failover/
package failover
