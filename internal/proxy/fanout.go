package proxy

import (
	"encoding/json"
	"sync"

	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// fanOut is one client request sent to several backends: an aggregate to
// merge, a registration or a global write. Parts are delivered from upstream
// reader goroutines (or the client's reader on a send failure); the last one
// answers the client.
type fanOut struct {
	c      *clientConn
	client rawID
	route  router.Route
	reg    *registration // remembered for replay when every part succeeded

	mu        sync.Mutex
	remaining int
	results   []json.RawMessage
	errs      []*rpcError
}

// fanOut sends a request to its targets: every routable backend for
// aggregates and global writes, every backend the client uses for a
// registration (one backend if it uses none yet). It counts as one request
// in flight against MaxPending until it is answered.
func (c *clientConn) fanOut(body []byte, m *frame.Meta, route router.Route) {
	id := m.ID.Of(body)
	var targets []*router.Backend
	if route.Class == router.ClassRegistration {
		if rerr := c.dedicate(); rerr != nil {
			c.replyError(id, rerr)
			return
		}
		c.mu.Lock()
		for _, u := range c.upstreams {
			targets = append(targets, u.backend)
		}
		c.mu.Unlock()
		if len(targets) == 0 {
			if b := c.anyBackend(); b != nil {
				targets = append(targets, b)
			}
		}
	} else {
		targets = c.srv.table.Ring().Backends()
	}
	if len(targets) == 0 {
		c.replyError(id, proxyError(codeNoBackend, "no backend available", errorData{Retryable: true}))
		return
	}
	// A fan-out counts as one request in flight until finish answers it.
	if !c.admit(body, m) {
		return
	}
	c.pending.Add(1)
	perTarget := 1
	if route.Merge == router.MergeLastID {
		perTarget = 2 // getLastId, and session.list to compare times
	}
	parts := perTarget * len(targets)
	c.busy.Add(1) // until finish has answered the client
	f := &fanOut{
		c:         c,
		client:    makeRawID(id),
		route:     route,
		remaining: parts,
		results:   make([]json.RawMessage, parts),
		errs:      make([]*rpcError, parts),
	}
	if route.Class == router.ClassRegistration {
		f.reg = &registration{method: string(methodName(body, m)), params: paramsOf(body)}
	}
	for i, b := range targets {
		part := i * perTarget
		u, err := c.upstream(b)
		if err != nil {
			for k := 0; k < perTarget; k++ {
				f.deliver(part+k, nil, asRPCError(err, b.Name))
			}
			continue
		}
		if err := u.forward(body, m, pendingReq{fan: f, part: part}); err != nil {
			f.deliver(part, nil, asRPCError(err, b.Name))
		} else if u.obs != nil {
			u.obs.Request(route.Class)
		}
		c.markDirty(u)
		if perTarget == 2 {
			if _, err := u.request("session.list", json.RawMessage("{}"), pendingReq{fan: f, part: part + 1}); err != nil {
				f.deliver(part+1, nil, asRPCError(err, b.Name))
			}
		}
	}
}

// deliver records one part's answer; the last part answers the client.
func (f *fanOut) deliver(part int, result json.RawMessage, rerr *rpcError) {
	f.mu.Lock()
	f.results[part] = result
	f.errs[part] = rerr
	f.remaining--
	last := f.remaining == 0
	f.mu.Unlock()
	if last {
		f.finish()
	}
}

func (f *fanOut) finish() {
	c := f.c
	c.pending.Add(-1)
	defer c.busy.Add(-1)
	defer c.activity.Add(1)
	id := f.client.Bytes()
	var firstErr *rpcError
	for _, e := range f.errs {
		if e != nil {
			firstErr = e
			break
		}
	}
	if f.route.Class != router.ClassAggregate {
		// Registrations and global writes: a refusal by any backend reaches
		// the client as that backend's error, never dropped.
		if firstErr != nil {
			c.replyError(id, firstErr)
			return
		}
		if f.reg != nil {
			c.remember(*f.reg)
		}
		c.reply(id, f.results[0])
		return
	}
	// Aggregates: merge what the reachable backends said.
	var results, lists []json.RawMessage
	for i, r := range f.results {
		if f.errs[i] != nil {
			continue
		}
		if f.route.Merge == router.MergeLastID && i%2 == 1 {
			lists = append(lists, r)
			continue
		}
		results = append(results, r)
	}
	if len(results) == 0 {
		c.replyError(id, firstErr)
		return
	}
	if firstErr != nil {
		c.log().Debug("aggregate answered without every backend", "error", firstErr.Message)
	}
	merged, err := router.MergeResults(f.route.Merge, results, lists)
	if err != nil {
		c.replyError(id, &rpcError{Code: codeInternal, Message: "cannot merge backend answers: " + err.Error()})
		return
	}
	c.reply(id, merged)
}

// remember keeps a registration for replay on upstreams opened later: one
// per method, the latest replacing an earlier one, so what a new upstream
// replays is bounded by the registration methods, not by the client.
func (c *clientConn) remember(reg registration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.regs {
		if c.regs[i].method == reg.method {
			c.regs[i] = reg
			return
		}
	}
	c.regs = append(c.regs, reg)
}
