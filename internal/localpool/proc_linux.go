//go:build linux

package localpool

import (
	"syscall"
	"unsafe"
)

// setParentDeathSignal asks the kernel to SIGTERM the child when the thread
// that started it dies, so a child does not outlive a SIGKILLed rpcproxy.
// SIGTERM rather than SIGKILL lets the CLI end what it started itself, as
// its own process group is not signaled then. The pool starts every child
// from one goroutine locked to its thread for the pool's life (see
// Pool.runSpawner), since a Go thread can end before the process does.
func setParentDeathSignal(attr *syscall.SysProcAttr) {
	attr.Pdeathsig = syscall.SIGTERM
}

// pPID is waitid's idtype for "the child with this pid".
const pPID = 1

// waitExited blocks until the child pid has exited, without reaping it: the
// zombie keeps its pid, and so its process group id, from being reused.
func waitExited(pid int) error {
	var info [128]byte // a siginfo_t, which waitid fills and we ignore
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info[0])), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}
