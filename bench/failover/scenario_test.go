package failover

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"
)

// signalCase is how the victim backend is failed.
type signalCase struct {
	name string // "kill" or "stop": the metric names say ms-<name>-to-…
	sig  syscall.Signal
}

var (
	// sigkill: the process is gone; its connections are reset by the kernel.
	sigkill = signalCase{name: "kill", sig: syscall.SIGKILL}
	// sigstop: the process is frozen; the kernel still accepts its TCP
	// connections and buffers requests, but nothing answers.
	sigstop = signalCase{name: "stop", sig: syscall.SIGSTOP}
)

const (
	// sessionsPerRun are created, one turn each, before the failure.
	sessionsPerRun = 12
	// failoverLimit bounds the wait for the displaced session's answer and
	// turn: far above the slowest expected detection (default health,
	// SIGSTOP: about 4 s).
	failoverLimit = 30 * time.Second
	// logLag bounds how long after the answer the proxy's log line saying
	// the victim went down may reach us.
	logLag = 2 * time.Second
	// upLimit bounds the wait for a thawed backend to come back up.
	upLimit = 15 * time.Second
)

// failoverResult is one failover, timed from the signal.
type failoverResult struct {
	signal, health      string
	sessions, displaced int
	victim, resumedOn   string // fake names

	effective  time.Duration // the signal in effect (process reaped, every thread stopped)
	down       time.Duration // the proxy logged the victim down; 0 if never seen
	firstReply time.Duration // the displaced session's first response (maybe a retryable error)
	answered   time.Duration // its session.send answered (after retries)
	idle       time.Duration // the end of that turn: session.idle
	retries    int           // retryable errors before the answer
	codes      []int

	recoveryRetries int      // retryable errors during every other session's next turn
	lost            []string // sessions whose next turn failed or lost history, and why

	// SIGSTOP only, after SIGCONT:
	up         time.Duration // until the proxy logged the victim up again
	staleTurns int           // turns the thawed victim played from a request it got while stopped
}

func (r failoverResult) String() string {
	s := fmt.Sprintf("%s/%s: %s held %d of %d sessions; signal in effect %v, down %v, first reply %v, answered %v (on %s, %d retries %v), idle %v",
		r.signal, r.health, r.victim, r.displaced, r.sessions, ms(r.effective), ms(r.down), ms(r.firstReply), ms(r.answered),
		r.resumedOn, r.retries, r.codes, ms(r.idle))
	if r.recoveryRetries > 0 {
		s += fmt.Sprintf("; %d retries in the other sessions' next turns", r.recoveryRetries)
	}
	if r.signal == sigstop.name {
		s += fmt.Sprintf("; SIGCONT to up %v, stale turns %d", ms(r.up), r.staleTurns)
	}
	if len(r.lost) > 0 {
		s += "; LOST: " + strings.Join(r.lost, "; ")
	}
	return s
}

func ms(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }

// runFailover starts a cluster, creates sessionsPerRun sessions with a turn
// each, fails the fake holding the most of them with sc, and times the next
// turn of one of its sessions from the signal. Then every session plays a
// turn (none may be lost, each must keep its history); after SIGSTOP the
// victim is resumed and must come back.
func runFailover(tb testing.TB, bins binaries, sc signalCase, hs healthSettings) failoverResult {
	tb.Helper()
	c := startCluster(tb, bins, hs, 3)
	defer c.Close()
	fail := func(format string, args ...any) {
		tb.Helper()
		tb.Fatalf("%s/%s: %s\nrpcproxy log (tail):\n%s", sc.name, hs.name, fmt.Sprintf(format, args...), c.proxy.out.tail(30))
	}
	cl := c.client(tb)
	defer cl.Close()
	r := failoverResult{signal: sc.name, health: hs.name, sessions: sessionsPerRun}

	holder := map[string]string{}
	var sids []string
	for range sessionsPerRun {
		sid := newSessionID()
		server, err := createSession(cl, sid)
		if err != nil {
			fail("%v", err)
		}
		a, _, err := turnRetrying(cl, sid, "first turn")
		if err != nil {
			fail("first turn: %v", err)
		}
		if a.server != server || a.turn != 1 {
			fail("%s: first turn answered by %s as turn %d, want %s, turn 1", sid, a.server, a.turn, server)
		}
		holder[sid] = server
		sids = append(sids, sid)
	}
	victim := c.fake(busiest(sids, holder))
	if victim == nil {
		fail("session.create named a server that is none of the fakes")
	}
	var displaced []string
	for _, sid := range sids {
		if holder[sid] == victim.name {
			displaced = append(displaced, sid)
		}
	}
	r.victim, r.displaced = victim.name, len(displaced)
	target := displaced[0]

	// Fail the victim at a random point of its health-check cycle, not at a
	// phase set by how long the set-up took.
	randomPhase(hs)
	start := time.Now()
	if err := victim.proc.signal(sc.sig); err != nil {
		fail("%v", err)
	}
	// Measure the next turn, not a race with the signal: a turn the victim
	// answers while the signal lands is lost with it (see README).
	if err := victim.proc.waitSignalled(sc.sig); err != nil {
		fail("%v", err)
	}
	r.effective = time.Since(start)
	o, err := sendRetrying(cl, target, "after failover", start, failoverLimit)
	r.firstReply, r.answered, r.retries, r.codes = o.firstReply, o.answered, o.retries, o.codes
	if err != nil {
		fail("displaced session %s: %v", target, err)
	}
	a, err := collectTurn(cl, target, failoverLimit-time.Since(start))
	r.idle = time.Since(start)
	if err != nil {
		fail("displaced session %s: send answered after %v, but the turn did not end: %v", target, ms(r.answered), err)
	}
	r.resumedOn = a.server
	if a.server == victim.name || a.turn != 2 {
		r.lost = append(r.lost, fmt.Sprintf("%s: answered by %s as turn %d, want another server, turn 2", target, a.server, a.turn))
	}
	if l, ok := c.proxy.out.wait(logLag, backendDown(victim.addr)); ok {
		r.down = l.at.Sub(start)
	}

	// Every session carries on, the displaced ones elsewhere, with its history.
	for _, sid := range sids {
		if sid == target {
			continue
		}
		a, o, err := turnRetrying(cl, sid, "second turn")
		r.recoveryRetries += o.retries
		switch {
		case err != nil:
			r.lost = append(r.lost, fmt.Sprintf("%s (was on %s): %v", sid, holder[sid], err))
		case a.turn != 2:
			r.lost = append(r.lost, fmt.Sprintf("%s (was on %s): answered by %s as turn %d, want turn 2", sid, holder[sid], a.server, a.turn))
		case a.server == victim.name:
			r.lost = append(r.lost, fmt.Sprintf("%s: answered by the failed %s", sid, victim.name))
		}
	}

	if sc.sig == syscall.SIGSTOP {
		randomPhase(hs)
		thaw := time.Now()
		if err := victim.proc.signal(syscall.SIGCONT); err != nil {
			fail("%v", err)
		}
		l, ok := c.proxy.out.wait(upLimit, logRecord("backend state", map[string]string{"backend": victim.addr, "to": "up"}))
		if !ok {
			fail("%s not back up within %v of SIGCONT", victim.name, upLimit)
		}
		r.up = l.at.Sub(thaw)
		// The request the victim got while stopped sat in its socket; a
		// turn it played after SIGCONT shows in the shared history.
		a, _, err := turnRetrying(cl, target, "after thaw")
		switch {
		case err != nil:
			r.lost = append(r.lost, fmt.Sprintf("%s after SIGCONT: %v", target, err))
		case a.turn < 3:
			r.lost = append(r.lost, fmt.Sprintf("%s after SIGCONT: answered by %s as turn %d, want 3", target, a.server, a.turn))
		default:
			r.staleTurns = a.turn - 3
		}
	}
	return r
}

// randomPhase waits a random time under one health-check interval.
func randomPhase(hs healthSettings) {
	time.Sleep(rand.N(hs.interval))
}

// busiest returns the server holding the most sessions (the first such in
// sids order on a tie).
func busiest(sids []string, holder map[string]string) string {
	count := map[string]int{}
	best := ""
	for _, sid := range sids {
		h := holder[sid]
		count[h]++
		if best == "" || count[h] > count[best] {
			best = h
		}
	}
	return best
}

// backendDown matches the proxy's log of addr going down, actively or passively.
func backendDown(addr string) func(logLine) bool {
	active := logRecord("backend down", map[string]string{"backend": addr})
	passive := logRecord("backend down (passive)", map[string]string{"backend": addr})
	return func(l logLine) bool { return active(l) || passive(l) }
}
