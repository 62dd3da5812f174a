package main

// Seamless upgrade, as HAProxy's seamless reload does it: on SIGUSR2 the
// proxy starts the executable at its own path (os.Executable: the binary
// just installed there, if any) with the same arguments and environment,
// and passes it the listening socket itself (RPCPROXY_LISTEN_FD) and the
// write end of a pipe (RPCPROXY_READY_FD). The new process serves on that
// socket once it has a backend to route to, then writes one byte on the
// pipe. Only then does the old process stop accepting and drain (as on
// SIGTERM, up to shutdown_timeout) and exit 0. The socket never closes, so
// no connection is refused: connections queued on it are accepted by
// whichever process calls accept first, and by the new one alone after
// the hand-over.
//
// A new process that fails to start, exits, or is not ready within
// upgradeReadyTimeout (it is then sent SIGTERM) changes nothing: the old
// one logs why and keeps serving, and a later SIGUSR2 tries again. One
// upgrade runs at a time; SIGUSR2 during one, or after the hand-over, is
// logged and ignored.
//
// Gossip: the new process binds the same gossip address, so the old one
// leaves the cluster just before it starts the new one (keeping the
// backends it knows, still health-checked, for its own clients) and joins
// again if the upgrade fails. Managed pool (--spawn): the children belong
// to the process that started them (their ports, their random connection
// token, their temporary home), so SIGUSR2 is refused with a log line; stop
// and start such a proxy instead.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/config"
	"github.com/rpcproxy/rpcproxy/internal/health"
	"github.com/rpcproxy/rpcproxy/internal/membership"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

const (
	// envListenFD names the descriptor of the listening socket a new
	// process inherits from the old one.
	envListenFD = "RPCPROXY_LISTEN_FD"
	// envReadyFD names the descriptor of the pipe on which a new process
	// writes one byte once it serves.
	envReadyFD = "RPCPROXY_READY_FD"
	// upgradeReadyTimeout bounds the wait for a new process to be ready:
	// long enough for gossip to find the backends and for their first
	// health checks to pass.
	upgradeReadyTimeout = time.Minute
)

// listenOrInherit returns the listener inherited from the old process of an
// upgrade (inherited true), or a new one on addr. The variables naming the
// descriptors are cleared, so that a later upgrade starts clean.
func listenOrInherit(addr string, log hclog.Logger) (ln net.Listener, inherited bool, err error) {
	v := os.Getenv(envListenFD)
	if v == "" {
		ln, err = net.Listen("tcp", addr)
		if err != nil {
			return nil, false, fmt.Errorf("listen: %w", err)
		}
		return ln, false, nil
	}
	os.Unsetenv(envListenFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, false, fmt.Errorf("%s=%q: not a descriptor", envListenFD, v)
	}
	f := os.NewFile(uintptr(fd), "inherited-listener")
	defer f.Close() // FileListener made its own copy
	ln, err = net.FileListener(f)
	if err != nil {
		return nil, false, fmt.Errorf("inherited listener (%s=%d): %w", envListenFD, fd, err)
	}
	log.Info("upgrade: serving on the listener of the old process", "addr", ln.Addr().String(), "version", version, "pid", os.Getpid())
	return ln, true, nil
}

// awaitBackends waits until the ring has a backend (or ctx ends): a new
// process of an upgrade takes clients only when it can serve them.
func awaitBackends(ctx context.Context, table *router.Table, checker *health.Checker, log hclog.Logger) error {
	if table.Ring().Len() == 0 {
		log.Info("upgrade: waiting for a backend before taking clients")
	}
	poll := time.NewTicker(100 * time.Millisecond) // also catch a ring set without a view change
	defer poll.Stop()
	for {
		changed := checker.Changed()
		if table.Ring().Len() > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped before any backend was up: %w", context.Cause(ctx))
		case <-changed:
		case <-poll.C:
		}
	}
}

// notifyReady tells the old process of an upgrade that this one serves, by
// one byte on the inherited pipe, and closes the pipe.
func notifyReady(log hclog.Logger) {
	v := os.Getenv(envReadyFD)
	if v == "" {
		return
	}
	os.Unsetenv(envReadyFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		log.Warn("upgrade: bad ready descriptor; the old process will time out", "env", envReadyFD, "value", v)
		return
	}
	f := os.NewFile(uintptr(fd), "upgrade-ready")
	defer f.Close()
	if _, err := f.Write([]byte{1}); err != nil {
		log.Warn("upgrade: cannot tell the old process we are ready", "error", err)
		return
	}
	log.Info("upgrade: ready; the old process stops accepting")
}

// upgrader starts the new process on SIGUSR2 and hands over to it. Its run
// goroutine owns the attempt in progress (one at most) and closes over.
type upgrader struct {
	ln     net.Listener
	log    hclog.Logger
	refuse string         // why SIGUSR2 is refused (--spawn), or ""
	gossip *gossipMember  // left before the new process starts, or nil
	over   chan struct{}  // closed once a new process is ready
	stop   chan struct{}  // closed by Close
	wg     sync.WaitGroup // the run goroutine and an attempt's waiter
}

// startUpgrader handles SIGUSR2 until Close.
func startUpgrader(ln net.Listener, cfg *config.Config, gossip *gossipMember, log hclog.Logger) *upgrader {
	u := &upgrader{ln: ln, log: log.Named("upgrade"), gossip: gossip, over: make(chan struct{}), stop: make(chan struct{})}
	if cfg.Pool.Spawn > 0 {
		u.refuse = "the managed pool (--spawn) belongs to this process; a new one would start a second pool: restart the proxy instead"
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR2)
	u.wg.Add(1)
	go u.run(sig)
	return u
}

// HandedOver is closed once a new process serves: this one must drain.
func (u *upgrader) HandedOver() <-chan struct{} { return u.over }

// Close stops handling SIGUSR2 (ignored from then on) and waits for the
// upgrade in progress to end (a new process not yet ready is stopped). It
// is safe to call more than once.
func (u *upgrader) Close() {
	select {
	case <-u.stop:
	default:
		close(u.stop)
	}
	u.wg.Wait()
}

// attempt is an upgrade in progress.
type attempt struct {
	proc   *os.Process
	result chan error // receives nil once the new process is ready, else why not
	cancel chan struct{}
}

func (u *upgrader) run(sig chan os.Signal) {
	defer u.wg.Done()
	// Never back to SIGUSR2's default action (exit): a late SIGUSR2 to a
	// process that is draining must not kill it.
	defer signal.Ignore(syscall.SIGUSR2)
	var cur *attempt
	var result chan error
	for {
		select {
		case <-u.stop:
			if cur != nil {
				close(cur.cancel)
				<-cur.result
			}
			return
		case <-sig:
			switch {
			case u.refuse != "":
				u.log.Warn("SIGUSR2 refused", "reason", u.refuse)
			case isClosed(u.over):
				u.log.Warn("SIGUSR2 ignored: this process already handed over to a new one and is draining")
			case cur != nil:
				u.log.Warn("SIGUSR2 ignored: an upgrade is in progress", "pid", cur.proc.Pid)
			default:
				var err error
				if cur, err = u.start(); err != nil {
					u.log.Error("upgrade failed; this process keeps serving", "error", err)
					u.gossip.rejoin()
					cur = nil
					continue
				}
				result = cur.result
			}
		case err := <-result:
			pid := cur.proc.Pid
			cur, result = nil, nil
			if err != nil {
				u.log.Error("upgrade failed; this process keeps serving", "pid", pid, "error", err)
				u.gossip.rejoin()
				continue
			}
			u.log.Info("new process ready: stopping accepting and draining", "pid", pid)
			close(u.over)
		}
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// start starts the new process with the listener and the ready pipe.
//
// It uses syscall.ForkExec with the raw descriptors, not os/exec: exec.Cmd
// takes *os.File and calls Fd on them, which puts the descriptor in
// blocking mode; the listening socket's mode is shared with this process's
// own listener, whose Accept would then block in the kernel, and Close
// with it.
func (u *upgrader) start() (*attempt, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	sc, ok := u.ln.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("listener %T cannot be passed on", u.ln)
	}
	lraw, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("listener descriptor: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("ready pipe: %w", err)
	}
	defer w.Close() // the new process has its own copy
	wraw, err := w.SyscallConn()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("ready pipe: %w", err)
	}
	u.gossip.leave()
	env := append(withoutUpgradeEnv(os.Environ()), envListenFD+"=3", envReadyFD+"=4")
	argv := append([]string{exe}, os.Args[1:]...)
	pid, serr := 0, error(nil)
	cerr := lraw.Control(func(lfd uintptr) {
		werr := wraw.Control(func(wfd uintptr) {
			// Descriptors 0-2 as this process's; 3 the socket, 4 the pipe.
			pid, serr = syscall.ForkExec(exe, argv, &syscall.ProcAttr{Env: env, Files: []uintptr{0, 1, 2, lfd, wfd}})
		})
		if serr == nil {
			serr = werr
		}
	})
	if serr == nil {
		serr = cerr
	}
	if serr != nil {
		r.Close()
		return nil, fmt.Errorf("start %s: %w", exe, serr)
	}
	proc, err := os.FindProcess(pid) // on Unix it always succeeds
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("new process %d: %w", pid, err)
	}
	u.log.Info("new process started", "pid", pid, "path", exe)
	a := &attempt{proc: proc, result: make(chan error, 1), cancel: make(chan struct{})}
	// The reaper ends when the new process does, which may be long after
	// this one (it is the new proxy): it only collects the exit status.
	exited := make(chan string, 1)
	go func() {
		st, err := proc.Wait()
		if err != nil {
			exited <- err.Error()
			return
		}
		exited <- st.String()
	}()
	u.wg.Add(1)
	go u.awaitReady(a, r, exited)
	return a, nil
}

// awaitReady reports on a.result whether the new process wrote its ready
// byte before it exited, the timeout, or a cancel; a process not ready in
// time, or cancelled, is sent SIGTERM.
func (u *upgrader) awaitReady(a *attempt, r *os.File, exited <-chan string) {
	defer u.wg.Done()
	defer r.Close()
	readErr := make(chan error, 1)
	_ = r.SetReadDeadline(time.Now().Add(upgradeReadyTimeout))
	go func() { // ends at the byte, EOF (the new process exited), the deadline or r.Close
		var b [1]byte
		_, err := io.ReadFull(r, b[:])
		readErr <- err
	}()
	var err error
	select {
	case err = <-readErr:
	case <-a.cancel:
		err = errors.New("cancelled: this process is stopping")
	}
	switch {
	case err == nil:
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		select {
		case status := <-exited:
			err = fmt.Errorf("new process exited before it was ready: %s", status)
		case <-time.After(5 * time.Second):
			err = errors.New("new process closed its ready pipe without being ready")
			_ = a.proc.Signal(syscall.SIGTERM)
		}
	default:
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("new process not ready within %s", upgradeReadyTimeout)
		}
		_ = a.proc.Signal(syscall.SIGTERM)
		_ = r.SetReadDeadline(time.Now()) // unblock the reader if still reading
	}
	a.result <- err
}

// withoutUpgradeEnv drops descriptor variables this process was given.
func withoutUpgradeEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if strings.HasPrefix(kv, envListenFD+"=") || strings.HasPrefix(kv, envReadyFD+"=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// gossipMember is the proxy's gossip node, which an upgrade takes out of
// the cluster (freeing the gossip address for the new process) and puts
// back if the upgrade fails. The backend pool it feeds keeps its state
// across, so a rejoin reconciles rather than adds again. A nil
// *gossipMember (gossip off) does nothing.
type gossipMember struct {
	ctx     context.Context
	cfg     *config.Config
	pool    *gossipPool
	log     hclog.Logger
	mu      sync.Mutex
	node    *membership.Node
	stopped bool
}

func joinGossip(ctx context.Context, cfg *config.Config, checker *health.Checker, log hclog.Logger) (*gossipMember, error) {
	g := &gossipMember{ctx: ctx, cfg: cfg, pool: newGossipPool(cfg, checker, log), log: log}
	node, err := joinWithPool(ctx, cfg, g.pool, log)
	if err != nil {
		return nil, err
	}
	g.node = node
	return g, nil
}

// leave takes the node out of the cluster; the backends stay as they are.
func (g *gossipMember) leave() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.node == nil {
		return
	}
	if err := g.node.Close(); err != nil {
		g.log.Warn("upgrade: leaving gossip", "error", err)
	}
	g.node = nil
	g.log.Info("upgrade: left gossip for the new process; keeping the backends known")
}

// rejoin joins again after leave; a failure is logged (the proxy serves on
// with the backends it knows).
func (g *gossipMember) rejoin() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.node != nil || g.stopped {
		return
	}
	node, err := joinWithPool(g.ctx, g.cfg, g.pool, g.log)
	if err != nil {
		g.log.Error("upgrade: cannot join gossip again; serving with the backends known", "error", err)
		return
	}
	g.node = node
}

// Close leaves the cluster for good.
func (g *gossipMember) Close() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopped = true
	if g.node != nil {
		g.node.Close()
		g.node = nil
	}
}

// Members lists the cluster's members as the current node sees them; none
// while the process is out of the cluster (during an upgrade).
func (g *gossipMember) Members() []membership.Member {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	node := g.node
	g.mu.Unlock()
	if node == nil {
		return nil
	}
	return node.Members()
}
