package failover

import (
	"fmt"
	"io"
	"os"
	"slices"
	"testing"
	"text/tabwriter"
	"time"
)

// Sizes of the moved-share measurement.
const (
	ringKeys      = 100000 // random session IDs placed on rings of 3 and 4
	shareSessions = 200    // sessions through the in-process proxy
)

// BenchmarkFailover measures, with real rpcproxy and fakecli processes:
//
//   - kill/{default,tuned}: SIGKILL the fake holding the most of 12
//     sessions, then time one of its sessions' next turn from the signal;
//   - stop/{default,tuned}: the same with SIGSTOP (SIGCONT afterwards);
//   - moved-share: the share of sessions that change backend when a 4th
//     joins 3 (over the router's rings, and through an in-process proxy).
//
// Metrics are medians over the iterations (-benchtime Nx); ns/op is
// suppressed, as an iteration's wall time is mostly set-up. A summary
// table follows the results.
func BenchmarkFailover(b *testing.B) {
	bins := buildBinaries(b)
	// Every iteration of every repetition (-count), per scenario, for the
	// summary: with -count the sub-benchmarks repeat inside one run of this.
	type scenario struct {
		sc signalCase
		hs healthSettings
	}
	var order []scenario
	all := map[scenario][]failoverResult{}
	for _, sc := range []signalCase{sigkill, sigstop} {
		for _, hs := range []healthSettings{defaultHealth, tunedHealth} {
			b.Run(sc.name+"/"+hs.name, func(b *testing.B) {
				var results []failoverResult
				for b.Loop() {
					r := runFailover(b, bins, sc, hs)
					b.Log(r)
					if len(r.lost) > 0 {
						b.Errorf("sessions lost or history missing: %v", r.lost)
					}
					results = append(results, r)
				}
				summarize(sc, hs, results).report(b)
				key := scenario{sc, hs}
				if _, seen := all[key]; !seen {
					order = append(order, key)
				}
				all[key] = append(all[key], results...)
			})
		}
	}
	var shares shareRow
	b.Run("moved-share", func(b *testing.B) {
		var row shareRow
		for b.Loop() {
			ring, err := ringShare(ringKeys)
			if err != nil {
				b.Fatal(err)
			}
			prox := proxyShare(b, shareSessions)
			if len(prox.lost) > 0 {
				b.Errorf("sessions lost on scale-out: %v", prox.lost)
			}
			b.Logf("ring: %.3f moved (%.3f between old backends) of %d IDs; proxy: %d of %d sessions moved (%d to the new backend)",
				ring.share(), ring.betweenOld(), ring.sessions, prox.moved, prox.sessions, prox.toNew)
			row.ring = append(row.ring, ring)
			row.proxy = append(row.proxy, prox)
		}
		row.report(b)
		shares.ring = append(shares.ring, row.ring...)
		shares.proxy = append(shares.proxy, row.proxy...)
	})
	var rows []failoverRow
	for _, key := range order {
		rows = append(rows, summarize(key.sc, key.hs, all[key]))
	}
	printSummary(os.Stdout, rows, shares)
}

// failoverRow is the medians of one failover scenario.
type failoverRow struct {
	signal                             signalCase
	health                             healthSettings
	iterations                         int
	down, firstReply, answered, idle   time.Duration
	maxAnswered, up                    time.Duration
	retries, lost, staleTurns, retried float64 // retries: median; lost, staleTurns: totals; retried: iterations with retries
}

func summarize(sc signalCase, hs healthSettings, rs []failoverResult) failoverRow {
	row := failoverRow{signal: sc, health: hs, iterations: len(rs)}
	pick := func(f func(failoverResult) time.Duration) time.Duration {
		ds := make([]time.Duration, len(rs))
		for i, r := range rs {
			ds[i] = f(r)
		}
		return median(ds)
	}
	row.down = pick(func(r failoverResult) time.Duration { return r.down })
	row.firstReply = pick(func(r failoverResult) time.Duration { return r.firstReply })
	row.answered = pick(func(r failoverResult) time.Duration { return r.answered })
	row.idle = pick(func(r failoverResult) time.Duration { return r.idle })
	for _, r := range rs {
		row.maxAnswered = max(row.maxAnswered, r.answered)
	}
	row.up = pick(func(r failoverResult) time.Duration { return r.up })
	retries := make([]float64, len(rs))
	for i, r := range rs {
		retries[i] = float64(r.retries)
		row.lost += float64(len(r.lost))
		row.staleTurns += float64(r.staleTurns)
		if r.retries > 0 {
			row.retried++
		}
	}
	row.retries = median(retries)
	return row
}

func (row failoverRow) report(b *testing.B) {
	b.ReportMetric(0, "ns/op")
	name := row.signal.name
	b.ReportMetric(msOf(row.down), "ms-"+name+"-to-down")
	b.ReportMetric(msOf(row.firstReply), "ms-"+name+"-to-first-reply")
	b.ReportMetric(msOf(row.answered), "ms-"+name+"-to-answer")
	b.ReportMetric(msOf(row.idle), "ms-"+name+"-to-idle")
	b.ReportMetric(row.retries, "retries")
	b.ReportMetric(row.lost, "lost-sessions")
	if name == sigstop.name {
		b.ReportMetric(msOf(row.up), "ms-cont-to-up")
		b.ReportMetric(row.staleTurns, "stale-turns")
	}
}

// shareRow is every iteration of the moved-share sub-benchmark.
type shareRow struct {
	ring, proxy []shareResult
}

func (row shareRow) medians() (ring, ringOld, prox, proxOld float64) {
	f := func(rs []shareResult, g func(shareResult) float64) float64 {
		vs := make([]float64, len(rs))
		for i, r := range rs {
			vs[i] = g(r)
		}
		return median(vs)
	}
	return f(row.ring, shareResult.share), f(row.ring, shareResult.betweenOld),
		f(row.proxy, shareResult.share), f(row.proxy, shareResult.betweenOld)
}

func (row shareRow) report(b *testing.B) {
	ring, ringOld, prox, proxOld := row.medians()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(prox, "moved-share")
	b.ReportMetric(proxOld, "moved-between-old")
	b.ReportMetric(ring, "moved-share-ring")
	b.ReportMetric(ringOld, "moved-between-old-ring")
}

// expectedDown is when the proxy should mark the victim down: at once for a
// lost connection; for a frozen one, after fall failed checks of timeout
// each, interval apart, the first starting up to interval after the freeze.
func expectedDown(sc signalCase, hs healthSettings) string {
	if sc.sig != sigstop.sig {
		return "at once (connection lost)"
	}
	lo := time.Duration(hs.fall)*hs.timeout + time.Duration(hs.fall-1)*hs.interval
	return fmt.Sprintf("%v–%v", lo, lo+hs.interval)
}

func printSummary(w io.Writer, rows []failoverRow, shares shareRow) {
	if len(rows) > 0 {
		fmt.Fprintln(w, "\nfailover, medians over all iterations (times from the signal, for the displaced session's next turn):")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "signal\thealth\titerations\tdown\texpected down\tfirst reply\tanswered\t(max)\tturn idle\tretries\tretried\tlost\tSIGCONT→up\tstale turns\t")
		for _, r := range rows {
			up, stale := "-", "-"
			if r.signal.sig == sigstop.sig {
				up, stale = ms(r.up), fmt.Sprint(r.staleTurns)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%g\t%g\t%g\t%s\t%s\t\n",
				r.signal.name, fmt.Sprintf("%v/%v", r.health.interval, r.health.timeout), r.iterations,
				ms(r.down), expectedDown(r.signal, r.health), ms(r.firstReply), ms(r.answered), ms(r.maxAnswered), ms(r.idle),
				r.retries, r.retried, r.lost, up, stale)
		}
		tw.Flush()
	}
	if len(shares.proxy) > 0 {
		ring, ringOld, prox, proxOld := shares.medians()
		fmt.Fprintf(w, "\nadding a 4th backend to 3, medians over %d iterations (ideal: 0.250 moved, all to the new backend):\n", len(shares.proxy))
		fmt.Fprintf(w, "  ring, %d random IDs:        moved %.3f, of which between old backends %.3f\n", ringKeys, ring, ringOld)
		fmt.Fprintf(w, "  proxy, %d live sessions:     moved %.3f, of which between old backends %.3f\n", shareSessions, prox, proxOld)
	}
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median[T int | float64 | time.Duration](vs []T) T {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
