package fakecli

import (
	"encoding/json"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

// request is one client request being handled.
type request struct {
	id     []byte // raw JSON id, echoed in the response
	method string
	params json.RawMessage
	// after, when set by a handler, runs once the response is queued:
	// what a request starts (a turn, events) must follow its response.
	after func()
}

// handler answers a request on c with a result (any JSON-encodable value,
// or raw JSON as []byte) or an error. Handlers run on c's reader goroutine
// and must not block on anything but queueing to a connection.
type handler func(s *Server, c *conn, req *request) (any, *RPCError)

// handlers is the method table. Anything else is MethodNotFound.
var handlers map[string]handler

func init() {
	handlers = map[string]handler{
		"connect":                             handleConnect,
		"ping":                                handlePing,
		"status.get":                          handleStatus,
		"auth.getStatus":                      handleAuthStatus,
		"models.list":                         handleModels,
		"tools.list":                          handleTools,
		"session.create":                      handleCreate,
		"session.resume":                      handleResume,
		"session.send":                        handleSend,
		"session.getMessages":                 handleGetMessages,
		"session.list":                        handleList,
		"session.getLastId":                   handleGetLastID,
		"session.delete":                      handleDelete,
		"session.detach":                      handleDetach,
		"sessionFs.setProvider":               handleSetFsProvider,
		"llmInference.setProvider":            handleSetLLMProvider,
		"session.tools.handlePendingToolCall": handleToolResult,
		"session.permissions.handlePendingPermissionRequest": handlePermission,
	}
}

// dispatch answers one request and runs what it started.
func (s *Server) dispatch(c *conn, req *request) {
	var (
		result any
		rerr   *RPCError
	)
	switch h, ok := handlers[req.method]; {
	case !c.authed.Load() && req.method != "connect":
		rerr = &RPCError{Code: CodeAuthRequired, Message: msgAuthRequired}
	case !ok:
		rerr = &RPCError{Code: CodeMethodNotFound, Message: "Unhandled method " + req.method}
	default:
		result, rerr = h(s, c, req)
	}
	var b *frame.Buffer
	if rerr != nil {
		b = frame.Get(len(req.id) + len(rerr.Message) + 64)
		b.B = appendError(b.B[:0], req.id, rerr)
	} else {
		var raw []byte
		switch r := result.(type) {
		case []byte:
			raw = r
		case json.RawMessage:
			raw = r
		default:
			raw = mustJSON(result)
		}
		b = frame.Get(len(req.id) + len(raw) + 32)
		b.B = appendResult(b.B[:0], req.id, raw)
	}
	s.requests.Add(1)
	if c.send(b) && req.after != nil {
		req.after()
	}
}

// decode unmarshals params into v; absent params decode as {}.
func decode(req *request, v any) *RPCError {
	if len(req.params) == 0 || string(req.params) == "null" {
		return nil
	}
	if err := json.Unmarshal(req.params, v); err != nil {
		return invalidParams(req.method, err)
	}
	return nil
}
