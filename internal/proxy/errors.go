package proxy

import (
	"encoding/json"
	"errors"

	"github.com/rpcproxy/rpcproxy/internal/jsonrpc"
)

// JSON-RPC error codes the proxy answers with. The -3200x handshake codes
// match the CLI's; the -3203x ones are the proxy's own.
const (
	codeParseError     = -32700
	codeInvalidRequest = -32600
	codeInternal       = -32603
	codeAuthRequired   = -32001
	codeAuthFailed     = -32002
	codeAuthNotConfig  = -32003

	// codeBackendUnavailable: the backend a request needed could not be
	// reached or was lost with the request in flight. Retryable.
	codeBackendUnavailable = -32030
	// codeNoBackend: no backend is routable at all. Retryable.
	codeNoBackend = -32031
	// codeOverloaded: the client has too many requests in flight
	// (Config.MaxPending). Retryable once answers come back.
	codeOverloaded = -32032
	// codeTooManySessions: the client connection holds Config.MaxSessions
	// sessions already; delete or detach one first. Not retryable as such.
	codeTooManySessions = -32034
	// codeParamsTooLarge: a session.create or session.resume whose params
	// exceed Config.MaxSessionParams, which the proxy would have to keep
	// for failover. Not retryable.
	codeParamsTooLarge = -32035
	// codeTooManyConnections: the connection was refused by
	// Config.MaxConnections or Config.MaxConnectionsPerIP; the answer to
	// its first request (refuse.go), then the proxy closes it. Retryable
	// later.
	codeTooManyConnections = -32036
)

// rpcError is a JSON-RPC error object; Error() is its message.
type rpcError = jsonrpc.Error

// errorData is the data of the proxy's own errors: whether the client may
// retry, and which backend was concerned.
type errorData struct {
	Retryable bool   `json:"retryable"`
	Backend   string `json:"backend,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

func proxyError(code int, msg string, data errorData) *rpcError {
	d, _ := json.Marshal(data)
	return &rpcError{Code: code, Message: msg, Data: d}
}

// asRPCError returns err as a JSON-RPC error for a client: a backend's own
// JSON-RPC error as it is, anything else as a retryable unavailability of backend.
func asRPCError(err error, backend string) *rpcError {
	var re *rpcError
	if errors.As(err, &re) {
		return re
	}
	return proxyError(codeBackendUnavailable, "backend unavailable", errorData{Retryable: true, Backend: backend, Reason: err.Error()})
}

// responseBody builds a whole response message; one of result and rerr is set.
func responseBody(id []byte, result json.RawMessage, rerr *rpcError) []byte {
	if len(id) == 0 {
		id = []byte("null")
	}
	b := make([]byte, 0, 64+len(result))
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	if rerr != nil {
		e, _ := json.Marshal(rerr)
		b = append(b, `,"error":`...)
		b = append(b, e...)
	} else {
		if len(result) == 0 {
			result = json.RawMessage("null")
		}
		b = append(b, `,"result":`...)
		b = append(b, result...)
	}
	return append(b, '}')
}

// requestBody builds a whole request message with a numeric id.
func requestBody(id uint64, method string, params json.RawMessage) []byte {
	return jsonrpc.AppendRequest(make([]byte, 0, 64+len(method)+len(params)), id, method, params)
}

// cancelNotification builds the $/cancelRequest notification for an upstream id.
func cancelNotification(id uint64) []byte {
	nid := numericID(id)
	b := append([]byte(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":`), nid.Bytes()...)
	return append(b, "}}"...)
}
