package jsonrpc

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

// peer answers the first request it reads with script, frame by frame,
// then closes its side.
func peer(t *testing.T, script ...string) (*frame.Reader, *frame.Writer) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	go func() {
		defer b.Close()
		r := frame.NewReader(b, nil, frame.Limits{})
		w := frame.NewWriter(b)
		buf, err := r.Read()
		if err != nil {
			return
		}
		buf.Release()
		for _, s := range script {
			if w.Write([]byte(s)) != nil || w.Flush() != nil {
				return
			}
		}
	}()
	return frame.NewReader(a, nil, frame.Limits{}), frame.NewWriter(a)
}

func TestCallSkipsWhatIsNotItsAnswer(t *testing.T) {
	r, w := peer(t,
		`{"jsonrpc":"2.0","method":"session.lifecycle","params":{}}`,
		`{"jsonrpc":"2.0","id":7,"method":"hooks.invoke","params":{}}`,
		`{"jsonrpc":"2.0","id":6,"result":{"stale":true}}`,
		`{"jsonrpc":"2.0","id":"7","result":{"string id":true}}`,
		`{"jsonrpc":"2.0","id":7,"result":{"ok":true}}`,
	)
	got, err := Call(r, w, 7, "connect", json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"ok":true}` {
		t.Fatalf("result = %s", got)
	}
}

func TestCallReturnsThePeersRefusal(t *testing.T) {
	r, w := peer(t, `{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}`)
	_, err := Call(r, w, 1, "connect", nil)
	var re *Error
	if !errors.As(err, &re) || re.Code != -32601 || re.Message != "Method not found" {
		t.Fatalf("err = %v, want the peer's -32601", err)
	}
}

func TestCallReportsTheConnectionsEnd(t *testing.T) {
	r, w := peer(t) // reads the request, answers nothing, closes
	_, err := Call(r, w, 1, "ping", nil)
	var re *Error
	if err == nil || errors.As(err, &re) || !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want the connection's end", err)
	}
}

func TestAppendRequest(t *testing.T) {
	for _, tc := range []struct {
		params string
		want   string
	}{
		{"", `{"jsonrpc":"2.0","id":3,"method":"a\"b"}`},
		{`{"x":1}`, `{"jsonrpc":"2.0","id":3,"method":"a\"b","params":{"x":1}}`},
	} {
		got := string(AppendRequest(nil, 3, `a"b`, json.RawMessage(tc.params)))
		if got != tc.want {
			t.Errorf("AppendRequest(params %q) = %s, want %s", tc.params, got, tc.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("AppendRequest(params %q) is not JSON: %s", tc.params, got)
		}
	}
}
