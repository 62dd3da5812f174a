//go:build unix

package localpool

import "syscall"

// supported reports whether this OS can run a pool.
const supported = true

// groupSignal is a signal the pool sends to a child's process group.
type groupSignal = syscall.Signal

const (
	sigTerm = syscall.SIGTERM
	sigKill = syscall.SIGKILL
)

// sysProcAttr puts a child in a process group of its own, so that the pool
// can signal everything the child starts, and on Linux gives it a parent
// death signal.
func sysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true}
	setParentDeathSignal(attr)
	return attr
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig groupSignal) error {
	return syscall.Kill(-pid, sig)
}
