package fakecli

import (
	"encoding/json"
	"slices"
	"time"
)

// Handshake and the queries any server answers without a session.

func handleConnect(s *Server, c *conn, req *request) (any, *RPCError) {
	var p struct {
		Token              string   `json:"token"`
		SupportedTaskKinds []string `json:"supportedTaskKinds"`
	}
	if err := decode(req, &p); err != nil {
		return nil, err
	}
	switch {
	case s.cfg.Token != "" && p.Token != s.cfg.Token:
		return nil, &RPCError{Code: CodeAuthFailed, Message: msgAuthFailed}
	case s.cfg.Token == "" && p.Token != "":
		return nil, &RPCError{Code: CodeAuthNotConfigured, Message: msgAuthNotConfigured}
	}
	c.authed.Store(true)
	kinds := []string{"agent", "shell"}
	if slices.Contains(p.SupportedTaskKinds, "client") {
		kinds = append(kinds, "client")
	}
	return struct {
		OK              bool     `json:"ok"`
		ProtocolVersion int      `json:"protocolVersion"`
		Version         string   `json:"version"`
		TaskKinds       []string `json:"taskKinds"`
	}{true, s.cfg.ProtocolVersion, s.cfg.Version, kinds}, nil
}

func handlePing(s *Server, c *conn, req *request) (any, *RPCError) {
	var p struct {
		Message string `json:"message"`
	}
	if err := decode(req, &p); err != nil {
		return nil, err
	}
	msg := "pong"
	if p.Message != "" {
		msg = "pong: " + p.Message
	}
	// The CLI sends the timestamp as an ISO string, not epoch milliseconds.
	return struct {
		Message         string `json:"message"`
		Timestamp       string `json:"timestamp"`
		ProtocolVersion int    `json:"protocolVersion"`
	}{msg, time.Now().UTC().Format(time.RFC3339Nano), s.cfg.ProtocolVersion}, nil
}

func handleStatus(s *Server, c *conn, req *request) (any, *RPCError) {
	return struct {
		Version         string `json:"version"`
		ProtocolVersion int    `json:"protocolVersion"`
		Server          string `json:"server"`
	}{s.cfg.Version, s.cfg.ProtocolVersion, s.cfg.Name}, nil
}

func handleAuthStatus(s *Server, c *conn, req *request) (any, *RPCError) {
	return map[string]any{"isAuthenticated": true, "authType": "api-key", "statusMessage": "fakecli " + s.cfg.Name}, nil
}

type modelInfo struct {
	ID           string         `json:"id"`
	Name         string         `json:"name"`
	Capabilities map[string]any `json:"capabilities"`
}

var models = []modelInfo{
	{"fake-small", "Fake Small", map[string]any{"supports": map[string]any{}, "limits": map[string]any{"max_context_window_tokens": 128000}}},
	{"fake-large", "Fake Large", map[string]any{"supports": map[string]any{}, "limits": map[string]any{"max_context_window_tokens": 200000}}},
}

func handleModels(s *Server, c *conn, req *request) (any, *RPCError) {
	return struct {
		Models []modelInfo `json:"models"`
	}{models}, nil
}

func handleTools(s *Server, c *conn, req *request) (any, *RPCError) {
	return json.RawMessage(`{"tools":[]}`), nil
}
