// Command wiretee is a logging TCP tee for looking at the SDK ⇄ CLI wire: it
// accepts connections on -listen, connects each to -target, copies bytes both
// ways unchanged and logs every Content-Length framed message, one per line,
// prefixed with the connection number and direction ("C→S" client to server).
// A debugging aid for the end-to-end work, not part of the proxy.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to accept SDK connections on")
	target := flag.String("target", "", "CLI server address to forward to")
	out := flag.String("out", "", "file to write the message log to (default stdout)")
	maxBody := flag.Int("max", 4000, "log at most this many bytes of each body")
	flag.Parse()
	if *target == "" {
		log.Fatal("wiretee: -target is required")
	}
	w := io.Writer(os.Stdout)
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		w = f
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(os.Stderr, "wiretee listening on", ln.Addr())
	t := &tee{target: *target, w: w, max: *maxBody}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go t.handle(c)
	}
}

type tee struct {
	target string
	max    int
	mu     sync.Mutex
	w      io.Writer
	conns  atomic.Int64
}

func (t *tee) handle(client net.Conn) {
	n := t.conns.Add(1)
	server, err := net.Dial("tcp", t.target)
	if err != nil {
		t.logf("#%d dial %s: %v", n, t.target, err)
		client.Close()
		return
	}
	t.logf("#%d open", n)
	var wg sync.WaitGroup
	wg.Add(2)
	go t.copyLogged(&wg, n, "C→S", server, client)
	go t.copyLogged(&wg, n, "S→C", client, server)
	wg.Wait()
	t.logf("#%d closed", n)
}

// copyLogged copies src to dst unchanged while a frame reader on a tee of the
// stream logs each message.
func (t *tee) copyLogged(wg *sync.WaitGroup, n int64, dir string, dst, src net.Conn) {
	defer wg.Done()
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := frame.NewReader(pr, nil, frame.Limits{})
		for {
			b, err := r.Read()
			if err != nil {
				_, _ = io.Copy(io.Discard, pr)
				return
			}
			body := b.B
			suffix := ""
			if len(body) > t.max {
				body, suffix = body[:t.max], fmt.Sprintf("…(+%d bytes)", len(b.B)-t.max)
			}
			t.logf("#%d %s %s%s", n, dir, body, suffix)
			b.Release()
		}
	}()
	_, _ = io.Copy(io.MultiWriter(dst, pw), src)
	pw.Close()
	<-done
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_ = src.Close()
}

func (t *tee) logf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, format+"\n", args...)
}
