package config

import "time"

// Overrides are settings given on the command line. Each one that is set
// replaces the value from the defaults, the file and the environment; an
// unset one (empty string, nil) leaves it alone.
type Overrides struct {
	// Listen replaces Config.Listen when not empty.
	Listen string

	// Backends, when not nil, replaces the whole backend list: a --backend
	// flag given at least once discards the file's backend blocks. Each item
	// is a host:port, or several separated by commas. A backend the file also
	// defines (same address) keeps the file's token and weight, so secrets
	// can stay in the file while the flag picks backends; any other gets no
	// token and weight 1. A non-nil list with no addresses leaves no static
	// backends.
	Backends []string

	// LogLevel replaces Config.LogLevel when not empty.
	LogLevel string

	// Spawn replaces Pool.Spawn when not nil.
	Spawn *int

	// GossipBind replaces Gossip.Bind when not empty (and so enables gossip).
	GossipBind string

	// Join, when not nil, replaces Gossip.Join; it enables gossip on
	// DefaultGossipBind if no bind address is set.
	Join []string

	// AgentCLI, AgentAdvertise and AgentName replace the agent block's cli,
	// advertise and name when not empty.
	AgentCLI, AgentAdvertise, AgentName string

	// AgentDrainTimeout replaces Agent.DrainTimeout when not nil.
	AgentDrainTimeout *time.Duration

	// Admin replaces Admin.Listen when not empty.
	Admin string
}

// Apply replaces the settings o sets. It does not validate; call Validate
// afterwards. A replaced setting is no longer reported at the file's line.
func (c *Config) Apply(o Overrides) {
	if o.Listen != "" {
		c.Listen = o.Listen
		c.src.forget("listen")
	}
	if o.LogLevel != "" {
		c.LogLevel = o.LogLevel
		c.src.forget("log_level")
	}
	if o.Spawn != nil {
		c.Pool.Spawn = *o.Spawn
		c.src.forget("pool.spawn")
	}
	if o.GossipBind != "" {
		c.Gossip.Bind = o.GossipBind
		c.src.forget("gossip.bind")
	}
	if o.Admin != "" {
		c.Admin.Listen = o.Admin
	}
	if o.Join != nil {
		c.Gossip.Join = nil
		for _, item := range o.Join {
			c.Gossip.Join = append(c.Gossip.Join, splitList(item)...)
		}
		c.src.forget("gossip.join")
		if c.Gossip.Bind == "" && len(c.Gossip.Join) > 0 {
			c.Gossip.Bind = DefaultGossipBind
		}
	}
	if o.AgentCLI != "" {
		c.Agent.CLI = o.AgentCLI
		c.src.forget("agent.cli")
	}
	if o.AgentAdvertise != "" {
		c.Agent.Advertise = o.AgentAdvertise
		c.src.forget("agent.advertise")
	}
	if o.AgentName != "" {
		c.Agent.Name = o.AgentName
		c.src.forget("agent.name")
	}
	if o.AgentDrainTimeout != nil {
		c.Agent.DrainTimeout = *o.AgentDrainTimeout
		c.src.forget("agent.drain_timeout")
	}
	if o.Backends != nil {
		fromFile := make(map[string]Backend, len(c.Backends))
		for _, b := range c.Backends {
			fromFile[addressKey(b.Address)] = b
		}
		var backends []Backend
		for _, item := range o.Backends {
			for _, addr := range splitList(item) {
				b, ok := fromFile[addressKey(addr)]
				if !ok {
					b = Backend{Weight: defaultBackendWeight}
				}
				b.Address = addr
				backends = append(backends, b)
			}
		}
		c.Backends = backends
	}
}
