package localpool

import (
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"time"
)

// Time bounds on ending a child.
const (
	// outputWaitDelay bounds how long reaping waits for a dead child's
	// stdout and stderr to close (something it started may hold them).
	outputWaitDelay = 2 * time.Second
	// killWait bounds the wait for a child to be reaped after SIGKILL.
	killWait = 5 * time.Second
)

// process is one running child process, the leader of its own process group.
// Its reaper goroutine is started with it; whoever holds a process must wait
// on done before dropping it, which bounds the reaper's life.
type process struct {
	cmd    *exec.Cmd
	pid    int
	stdout *lineLog
	stderr *lineLog

	mu     sync.Mutex // orders signals against reaping
	exited bool       // the leader has exited: the group must not be signaled by pid again

	done chan struct{} // closed once reaped; err is set then
	err  error         // cmd.Wait's result: the exit status
}

// newProcess wraps a started cmd and starts its reaper goroutine.
func newProcess(cmd *exec.Cmd, stdout, stderr *lineLog) *process {
	p := &process{cmd: cmd, pid: cmd.Process.Pid, stdout: stdout, stderr: stderr, done: make(chan struct{})}
	go p.reap()
	return p
}

// reap waits for the child to exit, kills whatever is left of its process
// group, and collects its exit status.
func (p *process) reap() {
	defer close(p.done)
	if waitExited(p.pid) == nil {
		// The leader is a zombie that pins its pid, so the group id cannot
		// have been reused yet: kill stragglers before reaping it.
		p.mu.Lock()
		p.exited = true
		p.mu.Unlock()
		_ = signalGroup(p.pid, sigKill)
	}
	p.err = p.cmd.Wait()
	p.mu.Lock()
	if !p.exited {
		// No way to wait without reaping here: the group is signaled after
		// the leader is gone, accepting the tiny chance of a reused pid.
		p.exited = true
		_ = signalGroup(p.pid, sigKill)
	}
	p.mu.Unlock()
	p.stdout.flush()
	p.stderr.flush()
}

// signal sends sig to the child's process group unless the child has exited.
func (p *process) signal(sig groupSignal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.exited {
		_ = signalGroup(p.pid, sig)
	}
}

// stop ends the child: SIGTERM to its group, SIGKILL after grace, and waits
// for it to be reaped. It returns an error only if the child outlived SIGKILL
// by killWait, in which case its reaper is left behind.
func (p *process) stop(grace time.Duration) error {
	p.signal(sigTerm)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	}
	p.signal(sigKill)
	t.Reset(killWait)
	select {
	case <-p.done:
		return nil
	case <-t.C:
		return fmt.Errorf("localpool: child pid %d still running %v after SIGKILL", p.pid, killWait)
	}
}

// exitError describes how the child ended, with its last stderr line when
// it left one: what a newcomer needs to see why a child will not start.
func (p *process) exitError() error {
	err := p.err
	if err == nil {
		err = errors.New("exit status 0")
	}
	if line := p.stderr.lastLine(); line != "" {
		return fmt.Errorf("%w (last stderr line: %q)", err, line)
	}
	return err
}
