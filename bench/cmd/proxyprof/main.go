// Command proxyprof is rpcproxy's serve loop built for profiling: the same
// internal/proxy server with the configuration defaults of `rpcproxy serve`,
// static backends and no health checker, writing a CPU profile (and a heap
// profile) when it stops. The bench runs it in place of the real binary with
// `benchrun --rpcproxy bin/proxyprof --profile-dir DIR`:
//
//	proxyprof serve --listen 127.0.0.1:4321 --backend A --backend B [--log-level warn]
//	          [--cpuprofile FILE] [--memprofile FILE]
//
// It is not a way to run the proxy: rpcproxy has no profiling endpoint, and
// this variant has no health checks or failover.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/config"
	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/proxy"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

type list []string

func (l *list) String() string     { return fmt.Sprint(*l) }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "proxyprof:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("proxyprof", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:4321", "address SDK clients connect to")
	logLevel := fs.String("log-level", "warn", "log level")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile here on exit")
	memProfile := fs.String("memprofile", "", "write a heap profile here on exit")
	configFile := fs.String("config", "", "HCL config file: its upstream and limits settings apply (backends still come from --backend)")
	var backends list
	fs.Var(&backends, "backend", "backend host:port (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(backends) == 0 {
		return errors.New("no --backend")
	}
	cfg := config.Default()
	if *configFile != "" {
		c, err := config.Load(*configFile)
		if err != nil {
			return err
		}
		cfg = c
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "proxyprof", Level: hclog.LevelFromString(*logLevel), Output: os.Stderr})
	table := router.NewTable(router.RingConfig{Partitions: cfg.Ring.Partitions, Replication: cfg.Ring.Replication, Load: cfg.Ring.Load})
	var bs []*router.Backend
	for _, a := range backends {
		bs = append(bs, &router.Backend{Name: a, Addr: a})
	}
	if err := table.Set(bs); err != nil {
		return err
	}
	// The same settings `rpcproxy serve` derives from config.Default().
	srv := proxy.New(proxy.Config{
		Limits: frame.Limits{
			MaxBody:       cfg.Limits.MaxFrameBytes,
			MaxHeaderLine: cfg.Limits.MaxHeaderLineBytes,
			FrameTimeout:  cfg.Limits.FrameTimeout,
		},
		HandshakeTimeout: cfg.Limits.HandshakeTimeout,
		DialTimeout:      cfg.Upstream.DialTimeout,
		MaxPending:       cfg.Limits.MaxPendingRequests,
		// Shared upstreams when the config file asks for them.
		ConnectionsPerBackend: cfg.Upstream.ConnectionsPerBackend,
		ClientQueueBytes:      cfg.Limits.ClientQueueBytes,
		PoolLifecycle:         cfg.Upstream.Lifecycle == config.LifecyclePool,
		Logger:                log.Named("proxy"),
	}, table, nil)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-stop:
	case err := <-errc:
		return err
	}
	if *memProfile != "" {
		if err := writeMemory(*memProfile); err != nil {
			return err
		}
	}
	srv.Close()
	return nil
}

// writeMemory writes a heap profile to path and the runtime's memory
// statistics (where resident memory goes: heap, goroutine stacks, runtime
// structures) to path + ".txt", both taken with the clients still connected.
func writeMemory(path string) error {
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		return err
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	const mib = 1 << 20
	txt := fmt.Sprintf("goroutines %d\n"+
		"before GC: heap in use %.1f MiB, heap live+garbage %.1f MiB\n"+
		"after GC:  heap in use %.1f MiB, heap alloc %.1f MiB, heap idle %.1f MiB (released %.1f MiB)\n"+
		"stacks in use %.1f MiB, mspan %.1f MiB, mcache %.1f MiB, gc metadata %.1f MiB, other %.1f MiB, sys total %.1f MiB\n",
		runtime.NumGoroutine(),
		float64(before.HeapInuse)/mib, float64(before.HeapAlloc)/mib,
		float64(m.HeapInuse)/mib, float64(m.HeapAlloc)/mib, float64(m.HeapIdle)/mib, float64(m.HeapReleased)/mib,
		float64(m.StackInuse)/mib, float64(m.MSpanInuse)/mib, float64(m.MCacheInuse)/mib, float64(m.GCSys)/mib,
		float64(m.OtherSys)/mib, float64(m.Sys)/mib)
	return os.WriteFile(path+".txt", []byte(txt), 0o644)
}
