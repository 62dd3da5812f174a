package localpool

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Readiness probing: the first probe comes soon, later ones back off.
const (
	firstProbeDelay = 20 * time.Millisecond
	maxProbeDelay   = 200 * time.Millisecond
	probeTimeout    = time.Second
)

// Errors of a child's start-up.
var (
	// ErrNotReady is wrapped when a child did not accept TCP within
	// Config.ReadyTimeout.
	ErrNotReady = errors.New("localpool: child not ready")
	// ErrExited is wrapped when a child exited before it accepted TCP.
	ErrExited = errors.New("localpool: child exited during start-up")
	// errClosed ends a start-up cut short by Close.
	errClosed = errors.New("localpool: pool closed")
)

// child supervises one slot of the pool: it starts the slot's process, waits
// for it to be ready, and restarts it when it dies, until the pool closes.
// Only its run goroutine touches its fields.
type child struct {
	pool     *Pool
	index    int
	log      hclog.Logger
	port     int // the slot's current port; kept across restarts while free
	starts   int // processes started so far
	backoff  backoff
	upAt     time.Time // when the current process got ready
	stopErrs error     // from stopping processes; read by Close after run ends
}

// run is the slot's supervisor goroutine. The outcome of the first start is
// sent on first (buffered): Start fails the pool on an error, so run does not
// retry a failed first start.
func (c *child) run(first chan<- error) {
	defer c.pool.supervisors.Done()
	for {
		proc, err := c.launch()
		if err != nil {
			if first != nil {
				first <- err
				return
			}
			if errors.Is(err, errClosed) {
				return
			}
		} else {
			c.markUp(proc)
			if first != nil {
				// Only now: Start must not return before every child is up.
				first <- nil
				first = nil
			}
			if closing := c.serve(proc); closing {
				return
			}
		}
		delay := c.backoff.next()
		if err != nil {
			c.log.Warn("child failed to start", "error", err, "retry_in", delay)
		} else {
			c.log.Info("restarting child", "retry_in", delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-c.pool.done:
			t.Stop()
			return
		}
	}
}

// markUp logs proc as up and publishes it.
func (c *child) markUp(proc *process) {
	c.upAt = time.Now()
	c.log.Info("child up", "addr", addrOf(c.port), "pid", proc.pid)
	c.pool.publish(Event{Child: c.index, Addr: addrOf(c.port), Up: true, PID: proc.pid, Restarts: c.starts - 1})
}

// serve waits for proc, which is up, to exit, or stops it when the pool
// closes; it reports whether the pool is closing.
func (c *child) serve(proc *process) (closing bool) {
	addr := addrOf(c.port)
	select {
	case <-proc.done:
		uptime := time.Since(c.upAt)
		err := proc.exitError()
		c.log.Warn("child exited", "addr", addr, "pid", proc.pid, "status", err, "uptime", uptime.Round(time.Millisecond))
		c.pool.publish(Event{Child: c.index, Addr: addr, PID: proc.pid, Restarts: c.starts - 1, Err: err})
		if uptime >= c.pool.cfg.ResetAfter {
			c.backoff.reset()
		}
		return false
	case <-c.pool.done:
		c.stopErrs = errors.Join(c.stopErrs, proc.stop(c.pool.cfg.StopTimeout))
		return true
	}
}

// launch starts one process for the slot and waits until it accepts TCP. On
// any error nothing it started is left running.
func (c *child) launch() (*process, error) {
	cfg := &c.pool.cfg
	if c.starts > 0 && !portFree(c.port) {
		// Someone took the port while the child was down: move rather than
		// wait for it, and tell the router through the Up event.
		ports, err := reservePorts(1)
		if err != nil {
			return nil, err
		}
		c.log.Warn("child's port is taken, moving it", "old_addr", addrOf(c.port), "new_addr", addrOf(ports[0]))
		c.port = ports[0]
	}
	args := append([]string{"--headless", "--port", strconv.Itoa(c.port)}, cfg.Args...)
	cmd := exec.Command(c.pool.binary, args...)
	cmd.Env = c.pool.env
	cmd.Dir = cfg.Dir
	stdout, stderr := newLineLog(c.log, "stdout"), newLineLog(c.log, "stderr")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = outputWaitDelay
	if err := c.pool.spawn(cmd); err != nil {
		return nil, fmt.Errorf("localpool: child %d: %w", c.index, err)
	}
	c.starts++
	proc := newProcess(cmd, stdout, stderr)
	c.log.Debug("child started", "pid", proc.pid, "addr", addrOf(c.port))
	if err := c.waitReady(proc); err != nil {
		return nil, errors.Join(err, proc.stop(cfg.StopTimeout))
	}
	return proc, nil
}

// waitReady polls the child's port until a TCP connect succeeds, the child
// exits, ReadyTimeout passes, or the pool closes.
func (c *child) waitReady(proc *process) error {
	addr := addrOf(c.port)
	deadline := time.NewTimer(c.pool.cfg.ReadyTimeout)
	defer deadline.Stop()
	delay := firstProbeDelay
	probe := time.NewTimer(delay)
	defer probe.Stop()
	for {
		select {
		case <-probe.C:
		case <-proc.done:
			return c.exitedError(proc)
		case <-deadline.C:
			return fmt.Errorf("%w: child %d not listening on %s after %v", ErrNotReady, c.index, addr, c.pool.cfg.ReadyTimeout)
		case <-c.pool.done:
			return errClosed
		}
		conn, err := net.DialTimeout("tcp", addr, probeTimeout)
		if err == nil {
			conn.Close()
			select {
			case <-proc.done:
				// Whatever answered is not our child, which has died.
				return c.exitedError(proc)
			default:
				return nil
			}
		}
		delay = min(delay*3/2, maxProbeDelay)
		probe.Reset(delay)
	}
}

// exitedError reports a child that died during start-up, with what it said.
func (c *child) exitedError(proc *process) error {
	return fmt.Errorf("%w: child %d (%s --port %d): %w", ErrExited, c.index, c.pool.binary, c.port, proc.exitError())
}
