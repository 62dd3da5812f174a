package membership

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkMembership measures, per profile, how long a proxy takes to see a
// backend come and go in a small cluster on loopback (one observing proxy,
// benchStableAgents agents, plus the agent under test):
//
//   - ms/join:  Join called on a new agent (seeded by another agent, not by
//     the proxy) until the proxy's Listener gets a set containing it;
//   - ms/leave: Close (graceful leave) until the proxy's set lacks it;
//   - ms/death: Shutdown without leave (a crash) until the proxy's set lacks it.
//
// One iteration takes seconds with the lan profile, so fix the count:
//
//	go test -run '^$' -bench Membership -benchtime 5x ./internal/membership/
func BenchmarkMembership(b *testing.B) {
	for _, p := range []Profile{ProfileFast, ProfileLAN} {
		b.Run(string(p), func(b *testing.B) { benchmarkProfile(b, p) })
	}
}

const benchStableAgents = 3

func benchmarkProfile(b *testing.B, profile Profile) {
	rec := newRecorder()
	proxy := startNode(b, testConfig("proxy", profile, proxyMeta), rec)
	var seed string
	for i := range benchStableAgents {
		a := startNode(b, testConfig(fmt.Sprintf("agent-%d", i), profile, backendMeta(i), proxy.Addr()), nil)
		seed = a.Addr()
	}
	rec.wait(b, 30*time.Second, "stable agents", func(bs []Backend) bool { return len(bs) == benchStableAgents })

	var join, leave, death time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// A fresh name each time: memberlist keeps dead nodes for a while and
		// refuses a known name at a new address.
		name := fmt.Sprintf("victim-%d-a", i)
		start := time.Now()
		v := startNode(b, testConfig(name, profile, backendMeta(100+i), seed), nil)
		_, at := rec.wait(b, 30*time.Second, name+" visible", hasBackend(name))
		join += at.Sub(start)

		start = time.Now()
		if err := v.Close(); err != nil {
			b.Fatal(err)
		}
		_, at = rec.wait(b, 30*time.Second, name+" gone after leave", lacksBackend(name))
		leave += at.Sub(start)

		name = fmt.Sprintf("victim-%d-b", i)
		v = startNode(b, testConfig(name, profile, backendMeta(200+i), seed), nil)
		rec.wait(b, 30*time.Second, name+" visible", hasBackend(name))
		start = time.Now()
		if err := v.Shutdown(); err != nil {
			b.Fatal(err)
		}
		_, at = rec.wait(b, 60*time.Second, name+" gone after crash", lacksBackend(name))
		death += at.Sub(start)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(join), "ms/join")
	b.ReportMetric(ms(leave), "ms/leave")
	b.ReportMetric(ms(death), "ms/death")
}
