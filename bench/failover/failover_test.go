package failover

import (
	"testing"
	"time"
)

// TestFailover runs each benchmark scenario once with the tuned health
// settings and checks what the benchmark relies on: the displaced session
// answers in time, on another backend, with its history; no session is
// lost; a frozen backend comes back; adding a backend moves about a quarter
// of the sessions, all to it. Skipped with -short (it starts processes).
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts rpcproxy and fakecli processes")
	}
	bins := buildBinaries(t)
	// Bounds with a wide margin for a loaded 2-core machine.
	tuned := tunedHealth
	stopBound := time.Duration(tuned.fall)*tuned.timeout + time.Duration(tuned.fall)*tuned.interval + 2*time.Second
	for _, tc := range []struct {
		sc    signalCase
		bound time.Duration
	}{
		{sigkill, 2 * time.Second},
		{sigstop, stopBound},
	} {
		t.Run(tc.sc.name, func(t *testing.T) {
			r := runFailover(t, bins, tc.sc, tuned)
			t.Log(r)
			if len(r.lost) > 0 {
				t.Errorf("lost: %v", r.lost)
			}
			if r.resumedOn == "" || r.resumedOn == r.victim {
				t.Errorf("displaced session answered by %q, want a backend other than %s", r.resumedOn, r.victim)
			}
			if r.answered > tc.bound {
				t.Errorf("displaced session answered %v after the signal, want under %v", r.answered, tc.bound)
			}
			if r.down == 0 {
				t.Errorf("the proxy never logged %s down", r.victim)
			}
			if tc.sc.sig == sigstop.sig && r.down < time.Duration(tuned.fall)*tuned.timeout {
				t.Errorf("frozen backend down after %v, sooner than %d check timeouts: what took it down?", r.down, tuned.fall)
			}
		})
	}
	t.Run("moved-share", func(t *testing.T) {
		ring, err := ringShare(ringKeys / 10)
		if err != nil {
			t.Fatal(err)
		}
		if s := ring.share(); s < 0.15 || s > 0.40 {
			t.Errorf("ring: moved share %.3f, want about 0.25", s)
		}
		prox := proxyShare(t, shareSessions/2)
		if len(prox.lost) > 0 {
			t.Errorf("lost: %v", prox.lost)
		}
		if s := prox.share(); s < 0.08 || s > 0.45 {
			t.Errorf("proxy: moved share %.3f (%d of %d), want about 0.25", s, prox.moved, prox.sessions)
		}
		if prox.toNew != prox.moved {
			t.Logf("%d of %d moved sessions went between old backends", prox.moved-prox.toNew, prox.moved)
		}
	})
}
