package membership

// authMode says how far a node's gossip is authenticated, from its config.
type authMode int

const (
	// authKeyed: Keys are set; only key holders can join.
	authKeyed authMode = iota
	// authLoopback: no keys, bound to loopback; only this host can join.
	// Warned about once at start.
	authLoopback
	// authInsecure: no keys and Insecure set (the only way to bind a
	// non-loopback address without keys); anyone who reaches the port can
	// join. Warned about at start and every insecureWarnEvery.
	authInsecure
)

// authModeOf classifies c, which has passed Validate.
func authModeOf(c Config) authMode {
	switch {
	case len(c.Keys) > 0:
		return authKeyed
	case c.Insecure:
		return authInsecure
	default:
		return authLoopback
	}
}

// warnUnauthenticated logs the warning for an unkeyed node; the dispatch
// loop repeats it for authInsecure.
func (n *Node) warnUnauthenticated() {
	switch authModeOf(n.cfg) {
	case authLoopback:
		n.log.Warn("gossip is not encrypted or authenticated (no keys); accepted because it is bound to loopback, so only processes on this host can join",
			"bind", n.cfg.BindAddr)
	case authInsecure:
		n.log.Warn("INSECURE: gossip is not encrypted or authenticated (no keys, insecure set): anyone who reaches the gossip port can join and receive sessions",
			"bind", n.cfg.BindAddr, "repeat_every", n.cfg.insecureWarnEvery)
	}
}
