// Package localpool runs the managed local pool: N headless Copilot CLI
// servers (`copilot --headless --port P`) started as children of rpcproxy on
// loopback, all sharing one session-state home so that a session can move
// from one child to another.
//
// A Pool starts every child, waits until each accepts TCP connections, and
// then supervises them: a child that exits is logged, restarted after an
// exponential backoff, and kept on the same address when its port is still
// free, so the backend address the router hashes on stays stable. Every
// child runs in its own process group, which the pool signals as a whole, so
// nothing the CLI starts outlives it; on Linux a child also gets a parent
// death signal, so it does not outlive rpcproxy even when rpcproxy is killed
// with SIGKILL.
//
// The router learns the pool's addresses from Addrs and follows children
// going down and up through Events.
package localpool
