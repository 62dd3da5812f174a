package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/admin"
	"github.com/rpcproxy/rpcproxy/internal/config"
	"github.com/rpcproxy/rpcproxy/internal/health"
	"github.com/rpcproxy/rpcproxy/internal/membership"
	"github.com/rpcproxy/rpcproxy/internal/metrics"
	"github.com/rpcproxy/rpcproxy/internal/proxy"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// adminSource is the admin API's view of a running proxy: the health
// checker (states, checks, drains), the ring (shares, owners), the proxy
// (sessions and clients) and the gossip node (members; nil without gossip).
type adminSource struct {
	checker *health.Checker
	table   *router.Table
	proxy   *proxy.Server
	member  *gossipMember
}

var _ admin.Source = (*adminSource)(nil)

// startAdmin starts the admin listener when cfg.Admin.Listen is set; it
// returns nil (a switched-off listener, safe to SetDraining and Close)
// otherwise.
func startAdmin(cfg *config.Config, src *adminSource, events *admin.Events, reg *metrics.Metrics, metricsHandler http.Handler, log hclog.Logger) (*admin.Server, error) {
	if cfg.Admin.Listen == "" {
		return nil, nil
	}
	ln, err := listenReusePort(cfg.Admin.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin listen: %w", err)
	}
	srv := admin.New(admin.Config{Source: src, Token: cfg.Admin.Token, Events: events, Metrics: metricsHandler,
		Counters: reg.Proxy.Totals, Turns: reg.Proxy.TurnQuantiles, Logger: log.Named("admin")})
	srv.Start(ln)
	log.Info("admin listening", "addr", ln.Addr().String(), "auth", cfg.Admin.Token != "")
	return srv, nil
}

// stateEvents records the health checker's state changes (its OnChange).
func stateEvents(events *admin.Events) func(string, health.State, health.State) {
	return func(backend string, from, to health.State) {
		events.Add(admin.KindState, backend, from.String()+" -> "+to.String())
	}
}

// moveEvents records the proxy's session moves (its OnSessionMoved): a move
// off a lost backend is a failover, any other a move at a turn boundary.
func moveEvents(events *admin.Events) func(session, from, to, reason string) {
	return func(session, from, to, reason string) {
		kind := admin.KindMove
		if reason == proxy.ReasonBackendLost {
			kind = admin.KindFailover
		}
		events.Add(kind, from, fmt.Sprintf("session %s moved to %s (%s)", session, to, reason))
	}
}

func (a *adminSource) Backends() []admin.Backend {
	ring := a.table.Ring()
	sessions := a.proxy.SessionCounts()
	clients := a.proxy.ClientsPerBackend()
	status := a.checker.Status()
	out := make([]admin.Backend, 0, len(status))
	for _, st := range status {
		b := admin.Backend{
			Address:    st.Name,
			State:      st.State.String(),
			Source:     st.Source,
			Weight:     st.Weight,
			Sessions:   sessions[st.Name],
			Clients:    clients[st.Name],
			AdminDrain: st.AdminDrain,
		}
		if n := ring.Partitions(); n > 0 {
			b.Share = float64(ring.Owned(st.Name)) / float64(n)
		}
		if !st.LastCheck.IsZero() {
			t := st.LastCheck.UTC()
			b.LastCheck = admin.LastCheck{Time: &t, LatencyMS: float64(st.LastLatency.Microseconds()) / 1000,
				OK: st.LastError == "", Error: st.LastError}
		}
		var info struct {
			Version         string `json:"version"`
			ProtocolVersion int    `json:"protocolVersion"`
		}
		if len(st.Info) > 0 && json.Unmarshal(st.Info, &info) == nil {
			b.Version, b.ProtocolVersion = info.Version, info.ProtocolVersion
		}
		out = append(out, b)
	}
	return out
}

func (a *adminSource) Session(id string) admin.Session {
	s := admin.Session{ID: id}
	if owner := a.table.Ring().Lookup([]byte(id)); owner != nil {
		s.Owner = owner.Name
	}
	holders := a.proxy.SessionHolders(id)
	slices.SortFunc(holders, func(x, y proxy.SessionHolder) int { return cmp.Compare(x.Client, y.Client) })
	for _, h := range holders {
		s.Holders = append(s.Holders, admin.SessionHolder{Client: h.Client, Backend: h.Backend, Moving: h.Moving})
	}
	s.Clients = len(holders)
	if len(holders) > 0 {
		s.Backend = holders[0].Backend
	}
	return s
}

func (a *adminSource) SetDrain(address string, draining bool) error {
	err := a.checker.SetAdminDrain(address, draining)
	if errors.Is(err, health.ErrUnknownBackend) {
		return fmt.Errorf("%w %q", admin.ErrUnknownBackend, address)
	}
	return err
}

func (a *adminSource) Members() []admin.Member {
	members := a.member.Members()
	out := make([]admin.Member, 0, len(members))
	for _, m := range members {
		am := admin.Member{Name: m.Name, Address: m.GossipAddr, Role: string(m.Meta.Role)}
		switch {
		case m.MetaErr != nil:
			am.Status, am.Error = "invalid", m.MetaErr.Error()
		case m.Meta.Role != membership.RoleBackend:
			am.Status, am.Version = "alive", m.Meta.Version
		default:
			am.Backend, am.Weight, am.Version, am.ProtocolVersion = m.Meta.Addr, max(m.Meta.Weight, 1), m.Meta.Version, m.Meta.ProtocolVersion
			switch {
			case !m.Meta.Healthy:
				am.Status = "unhealthy"
			case m.Meta.Draining:
				am.Status = "draining"
			default:
				am.Status = "healthy"
			}
		}
		out = append(out, am)
	}
	return out
}

func (a *adminSource) Routable() int { return a.table.Ring().Len() }

func (a *adminSource) Summary() admin.Summary {
	s := admin.Summary{Clients: a.proxy.Clients()}
	for _, n := range a.proxy.SessionCounts() {
		s.Sessions += n
	}
	for _, st := range a.checker.View().States {
		s.Backends++
		switch st {
		case health.StateUp:
			s.Up++
		case health.StateDraining:
			s.Draining++
		default:
			s.Down++
		}
	}
	return s
}
