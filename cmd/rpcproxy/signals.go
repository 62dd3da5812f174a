package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// processSignals turns what an operator or a service manager sends into
// what the process does. The first SIGTERM or SIGINT ends stopping (stop
// gracefully: an agent drains), a second one ends now (stop at once). Every
// SIGHUP sends on hangups, coalesced while one waits; catching it is what
// keeps SIGHUP (systemctl reload, log rotators) from killing the process,
// its default action.
type processSignals struct {
	stopping context.Context
	now      context.Context
	hangups  <-chan struct{}

	ch   chan os.Signal
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
	stop [2]context.CancelFunc
}

// watchSignals starts relaying signals until Close.
func watchSignals() *processSignals {
	hangups := make(chan struct{}, 1)
	p := &processSignals{hangups: hangups, ch: make(chan os.Signal, 4), done: make(chan struct{})}
	p.stopping, p.stop[0] = context.WithCancel(context.Background())
	p.now, p.stop[1] = context.WithCancel(context.Background())
	signal.Notify(p.ch, syscall.SIGTERM, os.Interrupt, syscall.SIGHUP)
	p.wg.Add(1)
	go p.relay(hangups)
	return p
}

// relay runs on its own goroutine until Close.
func (p *processSignals) relay(hangups chan<- struct{}) {
	defer p.wg.Done()
	for {
		select {
		case <-p.done:
			return
		case sig := <-p.ch:
			switch {
			case sig == syscall.SIGHUP:
				select {
				case hangups <- struct{}{}:
				default: // one is waiting already
				}
			case p.stopping.Err() == nil:
				p.stop[0]()
			default:
				p.stop[1]()
			}
		}
	}
}

// Close stops relaying (the signals get their default actions back) and
// waits for the relay goroutine. Idempotent.
func (p *processSignals) Close() {
	p.once.Do(func() {
		signal.Stop(p.ch)
		close(p.done)
		p.wg.Wait()
		p.stop[0]()
		p.stop[1]()
	})
}
