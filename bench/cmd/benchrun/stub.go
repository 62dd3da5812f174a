package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

// stubMain runs a minimal CLI stand-in for the idle-connection measurement:
// it answers connect, ping and session.create and pushes nothing. The fake
// CLI announces every session.create to every connection of its process
// (session.lifecycle, as the real CLI does), which with N idle clients is
// O(N²) notifications: that storm would be measured instead of the idle
// footprint the budget is about.
func stubMain(args []string) int {
	fs := flag.NewFlagSet("stub-backend", flag.ContinueOnError)
	port := fs.Int("port", 0, "loopback port (0: any)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(*port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "stub-backend:", err)
		return 1
	}
	fmt.Printf("%s%d\n", listeningLine, ln.Addr().(*net.TCPAddr).Port)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go serveStub(nc)
		}
	}()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	ln.Close()
	return 0
}

var (
	stubConnect = []byte(`{"ok":true,"protocolVersion":3,"version":"1.0.102","taskKinds":["agent","shell","client"]}`)
	stubPing    = []byte(`{"message":"pong","protocolVersion":3}`)
	stubEmpty   = []byte(`{}`)
)

// serveStub answers one connection's requests until it closes.
func serveStub(nc net.Conn) {
	defer nc.Close()
	r := frame.NewReader(nc, nil, frame.Limits{})
	w := frame.NewWriter(nc)
	var m frame.Meta
	var out []byte
	for {
		buf, err := r.Read()
		if err != nil {
			return
		}
		if frame.Scan(buf.B, &m) == nil && m.Kind == frame.KindRequest {
			result := stubEmpty
			switch method := m.Method.Of(buf.B); {
			case bytes.Equal(method, []byte("connect")):
				result = stubConnect
			case bytes.Equal(method, []byte("ping")):
				result = stubPing
			case bytes.Equal(method, []byte("session.create")), bytes.Equal(method, []byte("session.resume")):
				out = append(out[:0], `{"sessionId":"`...)
				out = append(out, m.SessionID.Of(buf.B)...)
				result = append(out, `"}`...)
			}
			body := append([]byte(`{"jsonrpc":"2.0","id":`), m.ID.Of(buf.B)...)
			body = append(body, `,"result":`...)
			body = append(body, result...)
			body = append(body, '}')
			err = w.Write(body)
			if err == nil && r.Buffered() == 0 {
				err = w.Flush()
			}
		}
		buf.Release()
		if err != nil {
			return
		}
	}
}
