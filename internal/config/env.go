package config

import (
	"strconv"
	"strings"
)

// ApplyEnv fills settings the file left empty from the environment, read
// through getenv (os.Getenv in production, a map lookup in tests):
//
//   - ConnectionToken from RPCPROXY_CONNECTION_TOKEN;
//   - Gossip.Encrypt from RPCPROXY_GOSSIP_KEYS, a comma-separated list of
//     base64 keys, primary first (blanks around commas are ignored);
//   - Gossip.BackendToken from RPCPROXY_BACKEND_TOKEN;
//   - Gossip.Insecure from RPCPROXY_GOSSIP_INSECURE when it reads as true
//     ("1", "true"); any other value leaves it as the file set it;
//   - Agent.Token from COPILOT_CONNECTION_TOKEN, the variable the CLI server
//     beside an agent reads its own token from.
//   - Admin.Token from RPCPROXY_ADMIN_TOKEN.
//
// A value set in the file always wins over the environment. Load calls
// ApplyEnv; call it yourself only when building a Config without Load.
func (c *Config) ApplyEnv(getenv func(string) string) {
	if c.ConnectionToken == "" {
		c.ConnectionToken = getenv(EnvConnectionToken)
	}
	if len(c.Gossip.Encrypt) == 0 {
		c.Gossip.Encrypt = splitList(getenv(EnvGossipKeys))
	}
	if c.Gossip.BackendToken == "" {
		c.Gossip.BackendToken = getenv(EnvBackendToken)
	}
	if !c.Gossip.Insecure {
		c.Gossip.Insecure, _ = strconv.ParseBool(getenv(EnvGossipInsecure))
	}
	if c.Agent.Token == "" {
		c.Agent.Token = getenv(EnvAgentToken)
	}
	if c.Admin.Token == "" {
		c.Admin.Token = getenv(EnvAdminToken)
	}
}

// splitList splits a comma-separated list, trimming blanks and dropping empty
// items; it returns nil when nothing is left.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
