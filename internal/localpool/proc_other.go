//go:build !unix

package localpool

import (
	"errors"
	"syscall"
)

// supported reports whether this OS can run a pool: it needs Unix process
// groups.
const supported = false

type groupSignal int

const (
	sigTerm groupSignal = iota
	sigKill
)

func sysProcAttr() *syscall.SysProcAttr  { return nil }
func signalGroup(int, groupSignal) error { return errors.ErrUnsupported }
func waitExited(int) error               { return errors.ErrUnsupported }
