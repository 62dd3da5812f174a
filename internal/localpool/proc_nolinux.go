//go:build unix && !linux

package localpool

import (
	"errors"
	"syscall"
)

// setParentDeathSignal does nothing: there is no parent death signal here,
// so children of a SIGKILLed rpcproxy survive it.
func setParentDeathSignal(*syscall.SysProcAttr) {}

// waitExited is not available here; the reaper then signals the group after
// reaping.
func waitExited(int) error { return errors.ErrUnsupported }
