package fakecli

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// JSON-RPC error codes the fake answers with. The CLI reports handler
// failures as CodeInternal with "Request <method> failed with message: …".
const (
	CodeAuthRequired      = -32001 // a request before connect on a server with a token
	CodeAuthFailed        = -32002 // connect with a wrong or missing token
	CodeAuthNotConfigured = -32003 // connect with a token on a server without one
	CodeMethodNotFound    = -32601
	CodeInvalidParams     = -32602
	CodeInternal          = -32603
)

// Messages of the authentication errors, as the CLI words them.
const (
	msgAuthRequired      = "AUTHENTICATION_REQUIRED"
	msgAuthFailed        = "AUTHENTICATION_FAILED"
	msgAuthNotConfigured = "AUTHENTICATION_NOT_CONFIGURED"
)

// RPCError is a JSON-RPC error object, as answered by the server or
// received by a Client.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *RPCError) Error() string {
	return fmt.Sprintf("json-rpc error %d: %s", e.Code, e.Message)
}

// failed is a handler failure worded as the CLI words it.
func failed(method, format string, args ...any) *RPCError {
	return &RPCError{Code: CodeInternal, Message: "Request " + method + " failed with message: " + fmt.Sprintf(format, args...)}
}

func invalidParams(method string, err error) *RPCError {
	return &RPCError{Code: CodeInvalidParams, Message: fmt.Sprintf("Invalid params for %s: %v", method, err)}
}

var jsonrpcPrefix = []byte(`{"jsonrpc":"2.0","id":`)

// appendResult appends a response carrying result (already JSON) for id.
func appendResult(b, id, result []byte) []byte {
	b = append(b, jsonrpcPrefix...)
	b = append(b, id...)
	b = append(b, `,"result":`...)
	b = append(b, result...)
	return append(b, '}')
}

// appendError appends an error response for id.
func appendError(b, id []byte, e *RPCError) []byte {
	b = append(b, jsonrpcPrefix...)
	b = append(b, id...)
	b = append(b, `,"error":{"code":`...)
	b = strconv.AppendInt(b, int64(e.Code), 10)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, e.Message)
	return append(b, "}}"...)
}

// appendRequest appends a server→client request with a numeric id.
func appendRequest(b []byte, id uint64, method string, params []byte) []byte {
	b = append(b, jsonrpcPrefix...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, method)
	b = append(b, `,"params":`...)
	b = append(b, params...)
	return append(b, '}')
}

// appendNotification appends a notification.
func appendNotification(b []byte, method string, params []byte) []byte {
	b = append(b, `{"jsonrpc":"2.0","method":`...)
	b = appendJSONString(b, method)
	b = append(b, `,"params":`...)
	b = append(b, params...)
	return append(b, '}')
}

// appendJSONString appends s as a JSON string. The fast path covers the
// plain ASCII that ids and names are made of.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// mustJSON encodes values the fake builds itself, which always encode.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("fakecli: encoding %T: %v", v, err))
	}
	return b
}
