package proxy

import (
	"crypto/subtle"
	"encoding/json"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

// handleConnect answers the client's connect as the CLI does (same error
// codes), with the proxy's own token, and with the pool's connect result
// (protocolVersion, version, taskKinds) so the SDK sees one server. The
// maxAuthFailures-th wrong token is answered, then the client is closed.
func (c *clientConn) handleConnect(body []byte, m *frame.Meta) {
	id := m.ID.Of(body)
	var req struct {
		Params map[string]json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		c.replyError(id, &rpcError{Code: -32602, Message: "invalid connect params"})
		return
	}
	var token string
	if raw, ok := req.Params["token"]; ok {
		if err := json.Unmarshal(raw, &token); err != nil {
			c.replyError(id, &rpcError{Code: -32602, Message: "invalid connect params: token must be a string"})
			return
		}
		delete(req.Params, "token")
	}
	want := c.srv.cfg.Token
	switch {
	case want != "" && subtle.ConstantTimeCompare([]byte(token), []byte(want)) != 1:
		closeNow := c.authFailed()
		if c.obs != nil {
			c.obs.ClientRefused(refusedAuth)
		}
		c.replyError(id, &rpcError{Code: codeAuthFailed, Message: "authentication failed: invalid connection token"})
		if closeNow {
			// The answer above is flushed already (or, queued, waited
			// for): the client learns why.
			c.drainOut()
			c.shutdown()
		}
		return
	case want == "" && token != "":
		c.replyError(id, &rpcError{Code: codeAuthNotConfig, Message: "authentication not configured: this server accepts connections without a token"})
		return
	}
	c.connected = true
	if !c.lim.authed.Swap(true) && c.lim.authTimer != nil {
		c.lim.authTimer.Stop()
	}
	c.connectParams, _ = json.Marshal(req.Params) // kept compact: one per client
	info := c.srv.poolInfo()
	if info == nil {
		// No backend has answered a handshake yet: open this client's first
		// upstream now, which learns the pool's protocol version. Waiting
		// here holds up only this client, which has nothing else in flight
		// before its connect is answered.
		if b := c.anyBackend(); b != nil {
			if u, err := c.upstream(b); err == nil {
				select {
				case <-u.ready:
				case <-c.done:
				}
				info = c.srv.poolInfo()
			}
		}
	}
	if info == nil {
		c.connected = false
		c.replyError(id, proxyError(codeNoBackend, "no backend available to answer connect", errorData{Retryable: true}))
		return
	}
	c.reply(id, info)
}
