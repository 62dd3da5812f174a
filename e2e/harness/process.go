package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a child gets to exit after SIGTERM before its whole
// process group is killed.
const stopGrace = 3 * time.Second

// Process is a child process started in its own process group, with stdout
// and stderr appended to one log file. Stop ends the whole group.
type Process struct {
	Name    string
	LogPath string

	cmd     *exec.Cmd
	pgid    int
	done    chan struct{} // closed when the child has been reaped
	waitErr error         // set before done is closed

	stopOnce sync.Once
}

// startProcess starts cmd with its output in logPath. The child gets its own
// process group (so Stop can end anything it spawned) and is killed by the
// kernel if the test process dies first.
func startProcess(name string, cmd *exec.Cmd, logPath string) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("harness: %s log: %w", name, err)
	}
	// The child writes straight into the file: no copy goroutines that a
	// grandchild holding the descriptor could keep alive.
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("harness: start %s: %w", name, err)
	}
	logFile.Close() // the child holds its own copy
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, pgid: cmd.Process.Pid, done: make(chan struct{})}
	go p.reap()
	return p, nil
}

// reap waits for the child so that it does not linger as a zombie and so
// that Exited can report it.
func (p *Process) reap() {
	p.waitErr = p.cmd.Wait()
	close(p.done)
}

// PID returns the child's process id, which is also its process group id.
func (p *Process) PID() int { return p.pgid }

// Exited reports whether the child has exited, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Log returns the child's output so far.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.LogPath, err)
	}
	return string(b)
}

// LogTail returns about the last n lines of the child's output.
func (p *Process) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitFor waits until a line of the child's output matches re and returns
// that line's submatches. It fails when ctx ends or the child exits first.
func (p *Process) WaitFor(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := re.FindStringSubmatch(p.Log()); m != nil {
			return m, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("harness: %s: waiting for %q: %w; output:\n%s", p.Name, re, ctx.Err(), p.LogTail(30))
		case <-p.done:
			if m := re.FindStringSubmatch(p.Log()); m != nil {
				return m, nil
			}
			return nil, fmt.Errorf("harness: %s exited (%v) before printing %q; output:\n%s", p.Name, p.waitErr, re, p.LogTail(30))
		case <-tick.C:
		}
	}
}

// Stop ends the child's process group: SIGTERM, then SIGKILL after a grace
// period, and waits for the child to be reaped. Safe to call more than once.
func (p *Process) Stop() {
	p.stopOnce.Do(func() {
		_ = syscall.Kill(-p.pgid, syscall.SIGTERM)
		// A frozen child would hold the SIGTERM until the grace period ends.
		_ = syscall.Kill(-p.pgid, syscall.SIGCONT)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
		}
		// Kill whatever is left of the group, the leader included.
		_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
		<-p.done
		waitGroupGone(p.pgid, 2*time.Second)
	})
}

// Kill ends the child's process group at once with SIGKILL (a crash, for
// failure tests) and waits for the child to be reaped.
func (p *Process) Kill() {
	p.stopOnce.Do(func() {
		_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
		<-p.done
		waitGroupGone(p.pgid, 2*time.Second)
	})
}

// Freeze stops the child's whole process group with SIGSTOP: it keeps its
// sockets open but answers nothing, like a hung server. Thaw (or Stop)
// undoes it; tests register Thaw with t.Cleanup so no stopped process
// outlives a failed test.
func (p *Process) Freeze() error {
	if err := syscall.Kill(-p.pgid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("harness: SIGSTOP %s: %w", p.Name, err)
	}
	return nil
}

// Thaw continues a frozen child's process group with SIGCONT. Thawing a
// child that is not frozen, or that has exited, does nothing.
func (p *Process) Thaw() {
	if exited, _ := p.Exited(); !exited {
		_ = syscall.Kill(-p.pgid, syscall.SIGCONT)
	}
}

// GroupAlive reports whether any live process of the child's group still
// exists. Zombies do not count: an orphan killed with its group may wait a
// while (or, under an init that does not reap, forever) to be reaped.
func (p *Process) GroupAlive() bool {
	return len(liveGroupMembers(p.pgid)) > 0
}

// liveGroupMembers lists the processes of group pgid that are not zombies,
// from /proc.
func liveGroupMembers(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		// No /proc: fall back to asking the kernel, zombies included.
		if err := syscall.Kill(-pgid, 0); err == nil || !errors.Is(err, syscall.ESRCH) {
			return []int{pgid}
		}
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// "pid (comm) state ppid pgrp …"; comm may hold spaces and parens.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 3 || fields[0] == "Z" || fields[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(fields[2]); err == nil && g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitGroupGone waits up to d for every live process of group pgid to end.
func waitGroupGone(pgid int, d time.Duration) {
	deadline := time.Now().Add(d)
	for len(liveGroupMembers(pgid)) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// startRPCProxy starts an rpcproxy command (serve or agent) with args and a
// --join per seed, in dir, logging to dir/<name>.log, with env added to the
// scrubbed environment.
func startRPCProxy(name, bin, dir string, args, join, env []string) (*Process, error) {
	for _, j := range join {
		args = append(args, "--join", j)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(scrubbedEnv(), env...)
	return startProcess(name, cmd, filepath.Join(dir, name+".log"))
}
