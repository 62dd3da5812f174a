package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rpcproxy/rpcproxy/internal/health"
	"github.com/rpcproxy/rpcproxy/internal/membership"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// Sources are the owners of state the metrics read at scrape time, each
// read once per scrape. Any may be nil (its metrics are then left out).
type Sources struct {
	// Clients reports the client connections open (proxy.Server.Clients).
	Clients func() int
	// Sessions reports the sessions held per backend over all clients
	// (proxy.Server.Sessions); a backend absent holds none.
	Sessions func() map[string]int
	// Panics reports the panics recovered while serving clients (proxy.Server.Panics).
	Panics func() uint64
	// Status reports every backend's state (health.Checker.Status).
	Status func() []health.BackendStatus
	// Ring is the ring in force (router.Table.Ring).
	Ring func() *router.Ring
	// Members reports the gossip members this node knows (membership.Node.Members).
	Members func() []membership.Member
}

var (
	descClients = prometheus.NewDesc(namespace+"_client_connections",
		"Client connections open.", nil, nil)
	descPanics = prometheus.NewDesc(namespace+"_panics_total",
		"Panics recovered while serving a client (each closed that client alone).", nil, nil)
	descSessions = prometheus.NewDesc(namespace+"_backend_sessions",
		"Sessions held on a backend, over all client connections.", []string{"backend"}, nil)
	descUp = prometheus.NewDesc(namespace+"_backend_up",
		"1 when the backend answers (up or draining), 0 when down.", []string{"backend"}, nil)
	descState = prometheus.NewDesc(namespace+"_backend_state",
		"The backend's state: 1 for the state it is in (up, down or draining), 0 for the others.", []string{"backend", "state"}, nil)
	descWeight = prometheus.NewDesc(namespace+"_backend_weight",
		"The backend's weight (its relative share of the ring).", []string{"backend"}, nil)
	descRingShare = prometheus.NewDesc(namespace+"_backend_ring_share_ratio",
		"Fraction of the ring's partitions the backend owns (0 when not routable).", []string{"backend"}, nil)
	descRingBackends = prometheus.NewDesc(namespace+"_ring_backends",
		"Backends on the ring: routable (up and not draining).", nil, nil)
	descMembers = prometheus.NewDesc(namespace+"_gossip_members",
		"Live gossip members this node knows, itself included, by role (backend, proxy, unknown).", []string{"role"}, nil)
)

var states = []health.State{health.StateUp, health.StateDown, health.StateDraining}

// memberRoles are the role label values of gossip members.
var memberRoles = []membership.Role{membership.RoleBackend, membership.RoleProxy}

// stateCollector reads Sources at scrape time.
type stateCollector struct{ src Sources }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descClients, descPanics, descSessions, descUp, descState, descWeight,
		descRingShare, descRingBackends, descMembers} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src
	if s.Clients != nil {
		ch <- prometheus.MustNewConstMetric(descClients, prometheus.GaugeValue, float64(s.Clients()))
	}
	if s.Panics != nil {
		ch <- prometheus.MustNewConstMetric(descPanics, prometheus.CounterValue, float64(s.Panics()))
	}
	// Every backend the checker knows gets a series, zero included; a
	// backend that holds sessions but is no longer checked keeps its own.
	var names []string
	if s.Status != nil {
		for _, st := range s.Status() {
			names = append(names, st.Name)
			up := 0.0
			if st.State != health.StateDown {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, st.Name)
			for _, state := range states {
				v := 0.0
				if st.State == state {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, st.Name, state.String())
			}
			ch <- prometheus.MustNewConstMetric(descWeight, prometheus.GaugeValue, float64(st.Weight), st.Name)
		}
	}
	if s.Sessions != nil {
		counts := s.Sessions()
		for _, name := range names {
			ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(counts[name]), name)
			delete(counts, name)
		}
		for name, n := range counts {
			ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(n), name)
		}
	}
	if s.Ring != nil {
		ring := s.Ring()
		ch <- prometheus.MustNewConstMetric(descRingBackends, prometheus.GaugeValue, float64(ring.Len()))
		shares := ring.Shares()
		onRing := make(map[string]bool, ring.Len())
		for i, b := range ring.Backends() {
			onRing[b.Name] = true
			ch <- prometheus.MustNewConstMetric(descRingShare, prometheus.GaugeValue, shares[i], b.Name)
		}
		for _, name := range names {
			if !onRing[name] {
				ch <- prometheus.MustNewConstMetric(descRingShare, prometheus.GaugeValue, 0, name)
			}
		}
	}
	if s.Members != nil {
		counts := map[string]int{"unknown": 0}
		for _, r := range memberRoles {
			counts[string(r)] = 0
		}
		for _, m := range s.Members() {
			role := string(m.Meta.Role)
			if _, ok := counts[role]; m.MetaErr != nil || !ok || role == "unknown" {
				role = "unknown"
			}
			counts[role]++
		}
		for role, n := range counts {
			ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(n), role)
		}
	}
}
