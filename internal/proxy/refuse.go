package proxy

import (
	"io"
	"net"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

// A connection over a cap (Config.MaxConnections, MaxConnectionsPerIP) is
// accepted and refused: its first request is answered with error -32036,
// then it is closed. An SDK sends connect first, so its start fails with
// the reason; closing without an answer would leave the Go SDK's connect
// waiting for its own deadline.
const (
	// maxRefusing bounds the refused connections waiting for their first
	// request; past it a refused connection gets the error with id null
	// and is closed at once.
	maxRefusing = 64
	// refuseTimeout bounds the whole exchange with a refused connection.
	refuseTimeout = 2 * time.Second
	// refuseMaxFrame bounds the first frame read from a refused connection.
	refuseMaxFrame = 64 << 10
)

// refuseConn refuses a connection over the cap l. Called on the accept
// loop, which it never holds up: the exchange runs on a goroutine of its
// own, owned by the server (Close ends it).
func (s *Server) refuseConn(conn net.Conn, l Limit) {
	s.limitReached(l, "connection refused: limit reached", "remote", conn.RemoteAddr().String())
	if s.cfg.Observer != nil {
		s.cfg.Observer.ClientRefused(refusedMaxConnections)
	}
	rerr := proxyError(codeTooManyConnections, "rpcproxy: too many connections ("+l.String()+"); try again later",
		errorData{Retryable: true, Reason: l.String()})
	s.mu.Lock()
	if s.closed || len(s.refusing) >= maxRefusing {
		s.mu.Unlock()
		// A fresh socket's send buffer is empty: this write does not wait.
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
		w := frame.NewWriter(conn)
		_ = w.Write(responseBody(nil, nil, rerr))
		_ = w.Flush()
		conn.Close()
		return
	}
	s.refusing[conn] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.answerRefused(conn, rerr)
}

// answerRefused answers the first request of a refused connection with
// rerr, then closes it once the peer has closed its side (or the time is
// up), so the answer is not lost to a reset.
func (s *Server) answerRefused(conn net.Conn, rerr *rpcError) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.refusing, conn)
		s.mu.Unlock()
		conn.Close()
	}()
	_ = conn.SetDeadline(time.Now().Add(refuseTimeout))
	r := frame.NewReader(conn, nil, frame.Limits{MaxBody: refuseMaxFrame})
	buf, err := r.Read()
	if err != nil {
		return
	}
	var m frame.Meta
	if frame.Scan(buf.B, &m) != nil || m.Kind != frame.KindRequest {
		buf.Release()
		return
	}
	body := responseBody(m.ID.Of(buf.B), nil, rerr)
	buf.Release()
	w := frame.NewWriter(conn)
	if w.Write(body) != nil || w.Flush() != nil {
		return
	}
	if tc, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(conn, refuseMaxFrame))
}
