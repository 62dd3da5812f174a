package config

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
)

// FileError is one problem found in a configuration file: a syntax error, an
// unknown block or attribute, or a value of the wrong type. Line and Column
// are 1-based and point at the offending text.
type FileError struct {
	File    string
	Line    int
	Column  int
	Summary string
	Detail  string
}

func (e *FileError) Error() string {
	msg := fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Summary)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Load returns the defaults overlaid with the HCL file at path (when path is
// not empty), then with the environment (see ApplyEnv). A setting the file
// omits keeps its default. Load does not validate: apply command-line
// overrides first, then call Validate. Problems in the file are reported as
// one *FileError per problem, joined.
//
// A path ending in ".json" is read as HCL's JSON syntax.
func Load(path string) (*Config, error) {
	cfg := Default()
	if path != "" {
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if cfg, err = Parse(src, path); err != nil {
			return nil, err
		}
	}
	cfg.ApplyEnv(os.Getenv)
	return cfg, nil
}

// Parse is Load for a file already in memory, without the environment:
// it returns the defaults overlaid with src. filename names the source in
// errors and selects the syntax (".json" for JSON, anything else native HCL).
func Parse(src []byte, filename string) (*Config, error) {
	parser := hclparse.NewParser()
	var (
		file  *hcl.File
		diags hcl.Diagnostics
	)
	if strings.HasSuffix(filename, ".json") {
		file, diags = parser.ParseJSON(src, filename)
	} else {
		file, diags = parser.ParseHCL(src, filename)
	}
	if diags.HasErrors() {
		return nil, diagError(diags, filename)
	}

	// Overlay even when decoding failed, so that bad durations are reported
	// together with unknown names and type errors.
	var raw fileConfig
	diags = gohcl.DecodeBody(file.Body, nil, &raw)
	cfg := Default()
	diags = append(diags, raw.overlay(cfg)...)
	if diags.HasErrors() {
		return nil, diagError(diags, filename)
	}
	cfg.src = sourcesOf(file.Body)
	return cfg, nil
}

// diagError turns the error diagnostics into one *FileError each, joined in
// the order they appear in the file.
func diagError(diags hcl.Diagnostics, filename string) error {
	diags = slices.Clone(diags)
	slices.SortStableFunc(diags, func(a, b *hcl.Diagnostic) int {
		if a.Subject == nil || b.Subject == nil {
			return 0
		}
		return a.Subject.Start.Byte - b.Subject.Start.Byte
	})
	var errs []error
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		fe := &FileError{File: filename, Summary: d.Summary, Detail: d.Detail}
		if d.Subject != nil {
			fe.File = d.Subject.Filename
			fe.Line = d.Subject.Start.Line
			fe.Column = d.Subject.Start.Column
		}
		errs = append(errs, fe)
	}
	return errors.Join(errs...)
}

// The file* types mirror Config as the file spells it. Every attribute is a
// pointer (nil when omitted) and every singleton block a pointer, so that an
// omitted setting keeps its default. Durations are hcl.Expression so that a
// bad duration is reported at its position.

type fileConfig struct {
	Listen          *string        `hcl:"listen,optional"`
	LogLevel        *string        `hcl:"log_level,optional"`
	LogJSON         *bool          `hcl:"log_json,optional"`
	ConnectionToken *string        `hcl:"connection_token,optional"`
	ShutdownTimeout hcl.Expression `hcl:"shutdown_timeout,optional"`
	Limits          *fileLimits    `hcl:"limits,block"`
	Upstream        *fileUpstream  `hcl:"upstream,block"`
	Ring            *fileRing      `hcl:"ring,block"`
	Backends        []fileBackend  `hcl:"backend,block"`
	Pool            *filePool      `hcl:"pool,block"`
	Health          *fileHealth    `hcl:"health,block"`
	Gossip          *fileGossip    `hcl:"gossip,block"`
	Agent           *fileAgent     `hcl:"agent,block"`
	Admin           *fileAdmin     `hcl:"admin,block"`
}

type fileAdmin struct {
	Listen *string `hcl:"listen,optional"`
	Token  *string `hcl:"token,optional"`
}

type fileLimits struct {
	MaxFrameBytes         *int           `hcl:"max_frame_bytes,optional"`
	MaxUnauthFrame        *int           `hcl:"max_unauthenticated_frame_bytes,optional"`
	MaxBufferedBytes      *int           `hcl:"max_buffered_bytes,optional"`
	MaxHeaderLineBytes    *int           `hcl:"max_header_line_bytes,optional"`
	FrameTimeout          hcl.Expression `hcl:"frame_timeout,optional"`
	HandshakeTimeout      hcl.Expression `hcl:"handshake_timeout,optional"`
	MaxPendingRequests    *int           `hcl:"max_pending_requests,optional"`
	MaxConnections        *int           `hcl:"max_connections,optional"`
	MaxConnectionsPerIP   *int           `hcl:"max_connections_per_ip,optional"`
	MaxSessionsPerClient  *int           `hcl:"max_sessions_per_client,optional"`
	MaxSessionParamsBytes *int           `hcl:"max_session_params_bytes,optional"`
	MaxClientParamsBytes  *int           `hcl:"max_client_params_bytes,optional"`
	ClientQueueBytes      *int           `hcl:"client_queue_bytes,optional"`
	ClientIdleTimeout     hcl.Expression `hcl:"client_idle_timeout,optional"`
}

type fileUpstream struct {
	DialTimeout           hcl.Expression `hcl:"dial_timeout,optional"`
	RequestTimeout        hcl.Expression `hcl:"request_timeout,optional"`
	ConnectionsPerBackend *int           `hcl:"connections_per_backend,optional"`
	Lifecycle             *string        `hcl:"lifecycle,optional"`
}

type fileRing struct {
	Partitions  *int     `hcl:"partitions,optional"`
	Replication *int     `hcl:"replication,optional"`
	Load        *float64 `hcl:"load,optional"`
}

type fileBackend struct {
	Address string  `hcl:"address,label"`
	Token   *string `hcl:"token,optional"`
	Weight  *int    `hcl:"weight,optional"`
	Drain   *bool   `hcl:"drain,optional"`
}

type filePool struct {
	Spawn       *int      `hcl:"spawn,optional"`
	CopilotPath *string   `hcl:"copilot_path,optional"`
	Home        *string   `hcl:"home,optional"`
	Args        *[]string `hcl:"args,optional"`
}

type fileHealth struct {
	Interval hcl.Expression `hcl:"interval,optional"`
	Timeout  hcl.Expression `hcl:"timeout,optional"`
	Rise     *int           `hcl:"rise,optional"`
	Fall     *int           `hcl:"fall,optional"`
}

type fileGossip struct {
	Bind            *string   `hcl:"bind,optional"`
	Advertise       *string   `hcl:"advertise,optional"`
	Join            *[]string `hcl:"join,optional"`
	Encrypt         *[]string `hcl:"encrypt,optional"`
	Insecure        *bool     `hcl:"insecure,optional"`
	AllowedBackends *[]string `hcl:"allowed_backends,optional"`
	Profile         *string   `hcl:"profile,optional"`
	BackendToken    *string   `hcl:"backend_token,optional"`
}

type fileAgent struct {
	CLI          *string        `hcl:"cli,optional"`
	Advertise    *string        `hcl:"advertise,optional"`
	Name         *string        `hcl:"name,optional"`
	Weight       *int           `hcl:"weight,optional"`
	Token        *string        `hcl:"token,optional"`
	DrainTimeout hcl.Expression `hcl:"drain_timeout,optional"`
}

// overlay copies every setting present in f onto cfg.
func (f *fileConfig) overlay(cfg *Config) hcl.Diagnostics {
	var diags hcl.Diagnostics
	set(&cfg.Listen, f.Listen)
	set(&cfg.LogLevel, f.LogLevel)
	set(&cfg.LogJSON, f.LogJSON)
	set(&cfg.ConnectionToken, f.ConnectionToken)
	diags = append(diags, setDuration(&cfg.ShutdownTimeout, f.ShutdownTimeout)...)

	if l := f.Limits; l != nil {
		set(&cfg.Limits.MaxFrameBytes, l.MaxFrameBytes)
		set(&cfg.Limits.MaxUnauthenticatedFrameBytes, l.MaxUnauthFrame)
		set(&cfg.Limits.MaxBufferedBytes, l.MaxBufferedBytes)
		set(&cfg.Limits.MaxHeaderLineBytes, l.MaxHeaderLineBytes)
		diags = append(diags, setDuration(&cfg.Limits.FrameTimeout, l.FrameTimeout)...)
		diags = append(diags, setDuration(&cfg.Limits.HandshakeTimeout, l.HandshakeTimeout)...)
		set(&cfg.Limits.MaxPendingRequests, l.MaxPendingRequests)
		set(&cfg.Limits.MaxConnections, l.MaxConnections)
		set(&cfg.Limits.MaxConnectionsPerIP, l.MaxConnectionsPerIP)
		set(&cfg.Limits.MaxSessionsPerClient, l.MaxSessionsPerClient)
		set(&cfg.Limits.MaxSessionParamsBytes, l.MaxSessionParamsBytes)
		set(&cfg.Limits.MaxClientParamsBytes, l.MaxClientParamsBytes)
		set(&cfg.Limits.ClientQueueBytes, l.ClientQueueBytes)
		diags = append(diags, setDuration(&cfg.Limits.ClientIdleTimeout, l.ClientIdleTimeout)...)
	}
	if u := f.Upstream; u != nil {
		diags = append(diags, setDuration(&cfg.Upstream.DialTimeout, u.DialTimeout)...)
		diags = append(diags, setDuration(&cfg.Upstream.RequestTimeout, u.RequestTimeout)...)
		set(&cfg.Upstream.ConnectionsPerBackend, u.ConnectionsPerBackend)
		set(&cfg.Upstream.Lifecycle, u.Lifecycle)
	}
	if r := f.Ring; r != nil {
		set(&cfg.Ring.Partitions, r.Partitions)
		set(&cfg.Ring.Replication, r.Replication)
		set(&cfg.Ring.Load, r.Load)
	}
	if len(f.Backends) > 0 {
		cfg.Backends = make([]Backend, 0, len(f.Backends))
		for _, fb := range f.Backends {
			b := Backend{Address: fb.Address, Weight: defaultBackendWeight}
			set(&b.Token, fb.Token)
			set(&b.Weight, fb.Weight)
			set(&b.Drain, fb.Drain)
			cfg.Backends = append(cfg.Backends, b)
		}
	}
	if p := f.Pool; p != nil {
		set(&cfg.Pool.Spawn, p.Spawn)
		set(&cfg.Pool.CopilotPath, p.CopilotPath)
		set(&cfg.Pool.Home, p.Home)
		setList(&cfg.Pool.Args, p.Args)
	}
	if h := f.Health; h != nil {
		diags = append(diags, setDuration(&cfg.Health.Interval, h.Interval)...)
		diags = append(diags, setDuration(&cfg.Health.Timeout, h.Timeout)...)
		set(&cfg.Health.Rise, h.Rise)
		set(&cfg.Health.Fall, h.Fall)
	}
	if g := f.Gossip; g != nil {
		set(&cfg.Gossip.Bind, g.Bind)
		set(&cfg.Gossip.Advertise, g.Advertise)
		setList(&cfg.Gossip.Join, g.Join)
		setList(&cfg.Gossip.Encrypt, g.Encrypt)
		set(&cfg.Gossip.Insecure, g.Insecure)
		setList(&cfg.Gossip.AllowedBackends, g.AllowedBackends)
		set(&cfg.Gossip.Profile, g.Profile)
		set(&cfg.Gossip.BackendToken, g.BackendToken)
	}
	if a := f.Agent; a != nil {
		set(&cfg.Agent.CLI, a.CLI)
		set(&cfg.Agent.Advertise, a.Advertise)
		set(&cfg.Agent.Name, a.Name)
		set(&cfg.Agent.Weight, a.Weight)
		set(&cfg.Agent.Token, a.Token)
		diags = append(diags, setDuration(&cfg.Agent.DrainTimeout, a.DrainTimeout)...)
	}
	if a := f.Admin; a != nil {
		set(&cfg.Admin.Listen, a.Listen)
		set(&cfg.Admin.Token, a.Token)
	}
	return diags
}

// set stores *v in dst when the file gave a value.
func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// setList stores *v in dst when the file gave a list; an empty list is stored
// as nil so that `x = []` and an omitted x compare equal.
func setList(dst *[]string, v *[]string) {
	if v == nil {
		return
	}
	if len(*v) == 0 {
		*dst = nil
		return
	}
	*dst = append([]string(nil), (*v)...)
}

// setDuration parses the duration string expr (e.g. "1.5s", "250ms") into dst
// when the file gave a value, reporting a bad one at its position.
func setDuration(dst *time.Duration, expr hcl.Expression) hcl.Diagnostics {
	if expr == nil {
		return nil
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		return diags
	}
	if v.IsNull() {
		return nil
	}
	if !v.Type().Equals(cty.String) || !v.IsKnown() {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid duration",
			Detail:   fmt.Sprintf(`A duration is a string with a unit, such as "30s", "250ms" or "1m30s"; this is a %s.`, v.Type().FriendlyName()),
			Subject:  expr.Range().Ptr(),
		}}
	}
	d, err := time.ParseDuration(v.AsString())
	if err != nil {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid duration",
			Detail:   fmt.Sprintf(`%v; write a duration with a unit, such as "30s", "250ms" or "1m30s".`, err),
			Subject:  expr.Range().Ptr(),
		}}
	}
	*dst = d
	return nil
}
