package config

import "reflect"

// setting names one setting as the file spells it and reads it from a Config.
type setting struct {
	name string
	get  func(*Config) any
}

// settings lists every setting except the backend blocks, which a reload
// compares backend by backend. TestChangedCoversEverySetting keeps it
// complete.
var settings = []setting{
	{"listen", func(c *Config) any { return c.Listen }},
	{"log_level", func(c *Config) any { return c.LogLevel }},
	{"log_json", func(c *Config) any { return c.LogJSON }},
	{"shutdown_timeout", func(c *Config) any { return c.ShutdownTimeout }},
	{"admin.listen", func(c *Config) any { return c.Admin.Listen }},
	{"admin.token", func(c *Config) any { return c.Admin.Token }},
	{"connection_token", func(c *Config) any { return c.ConnectionToken }},
	{"limits.max_frame_bytes", func(c *Config) any { return c.Limits.MaxFrameBytes }},
	{"limits.max_header_line_bytes", func(c *Config) any { return c.Limits.MaxHeaderLineBytes }},
	{"limits.frame_timeout", func(c *Config) any { return c.Limits.FrameTimeout }},
	{"limits.handshake_timeout", func(c *Config) any { return c.Limits.HandshakeTimeout }},
	{"limits.max_pending_requests", func(c *Config) any { return c.Limits.MaxPendingRequests }},
	{"limits.max_connections", func(c *Config) any { return c.Limits.MaxConnections }},
	{"limits.max_connections_per_ip", func(c *Config) any { return c.Limits.MaxConnectionsPerIP }},
	{"limits.max_sessions_per_client", func(c *Config) any { return c.Limits.MaxSessionsPerClient }},
	{"limits.max_session_params_bytes", func(c *Config) any { return c.Limits.MaxSessionParamsBytes }},
	{"limits.max_client_params_bytes", func(c *Config) any { return c.Limits.MaxClientParamsBytes }},
	{"limits.client_queue_bytes", func(c *Config) any { return c.Limits.ClientQueueBytes }},
	{"limits.client_idle_timeout", func(c *Config) any { return c.Limits.ClientIdleTimeout }},
	{"limits.max_unauthenticated_frame_bytes", func(c *Config) any { return c.Limits.MaxUnauthenticatedFrameBytes }},
	{"limits.max_buffered_bytes", func(c *Config) any { return c.Limits.MaxBufferedBytes }},
	{"upstream.dial_timeout", func(c *Config) any { return c.Upstream.DialTimeout }},
	{"upstream.request_timeout", func(c *Config) any { return c.Upstream.RequestTimeout }},
	{"upstream.connections_per_backend", func(c *Config) any { return c.Upstream.ConnectionsPerBackend }},
	{"upstream.lifecycle", func(c *Config) any { return c.Upstream.Lifecycle }},
	{"ring.partitions", func(c *Config) any { return c.Ring.Partitions }},
	{"ring.replication", func(c *Config) any { return c.Ring.Replication }},
	{"ring.load", func(c *Config) any { return c.Ring.Load }},
	{"pool.spawn", func(c *Config) any { return c.Pool.Spawn }},
	{"pool.copilot_path", func(c *Config) any { return c.Pool.CopilotPath }},
	{"pool.home", func(c *Config) any { return c.Pool.Home }},
	{"pool.args", func(c *Config) any { return c.Pool.Args }},
	{"health.interval", func(c *Config) any { return c.Health.Interval }},
	{"health.timeout", func(c *Config) any { return c.Health.Timeout }},
	{"health.rise", func(c *Config) any { return c.Health.Rise }},
	{"health.fall", func(c *Config) any { return c.Health.Fall }},
	{"gossip.bind", func(c *Config) any { return c.Gossip.Bind }},
	{"gossip.advertise", func(c *Config) any { return c.Gossip.Advertise }},
	{"gossip.join", func(c *Config) any { return c.Gossip.Join }},
	{"gossip.encrypt", func(c *Config) any { return c.Gossip.Encrypt }},
	{"gossip.profile", func(c *Config) any { return c.Gossip.Profile }},
	{"gossip.backend_token", func(c *Config) any { return c.Gossip.BackendToken }},
	{"gossip.insecure", func(c *Config) any { return c.Gossip.Insecure }},
	{"gossip.allowed_backends", func(c *Config) any { return c.Gossip.AllowedBackends }},
	{"agent.cli", func(c *Config) any { return c.Agent.CLI }},
	{"agent.advertise", func(c *Config) any { return c.Agent.Advertise }},
	{"agent.name", func(c *Config) any { return c.Agent.Name }},
	{"agent.weight", func(c *Config) any { return c.Agent.Weight }},
	{"agent.token", func(c *Config) any { return c.Agent.Token }},
	{"agent.drain_timeout", func(c *Config) any { return c.Agent.DrainTimeout }},
}

// Changed returns the names of the settings, backend blocks aside, whose
// values differ between old and next, in the order of config.example.hcl.
// It names secrets (connection_token) but never returns their values.
func Changed(old, next *Config) []string {
	var names []string
	for _, s := range settings {
		if !reflect.DeepEqual(s.get(old), s.get(next)) {
			names = append(names, s.name)
		}
	}
	return names
}
