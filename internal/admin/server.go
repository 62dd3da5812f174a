package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Config configures a Server. Source is required; other zero fields take
// the defaults named.
type Config struct {
	// Source is what the API reads and changes. Required.
	Source Source
	// Token, when set, is required as "Authorization: Bearer <token>" by
	// every endpoint but /healthz, /readyz and the status page's files
	// (/ and /ui/, which hold no data). Empty: no authentication.
	Token string
	// Events is the ring GET /v1/events lists; nil lists nothing.
	Events *Events
	// Metrics answers GET /metrics; nil answers 404.
	Metrics http.Handler
	// Counters, if set, returns the requests relayed and those answered
	// with an error since start; the summary's rates come from it.
	Counters func() (requests, errors uint64)
	// Turns, if set, estimates the median and 99th percentile turn
	// duration since start (ok false before the first turn).
	Turns func() (p50, p99 time.Duration, ok bool)
	// Logger; nil discards.
	Logger hclog.Logger
}

// Bounds of one admin HTTP exchange.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
	// closeTimeout bounds Close's wait for requests in progress.
	closeTimeout = 5 * time.Second
)

// Server is the admin HTTP server. Create it with New, run it with Serve,
// stop it with Close. A nil *Server is a switched-off listener: its
// SetDraining and Close do nothing.
type Server struct {
	cfg      Config
	log      hclog.Logger
	http     *http.Server
	mux      *http.ServeMux
	tokenSum [sha256.Size]byte
	draining atomic.Bool
	rate     rateMeter
	wg       sync.WaitGroup // the goroutine Start runs
}

// New returns a Server over cfg.Source.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	if cfg.Token != "" {
		s.tokenSum = sha256.Sum256([]byte(cfg.Token))
	}
	s.routes()
	s.http = &http.Server{
		Handler:           securityHeaders(s.mux),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          s.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	return s
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", s.auth(http.HandlerFunc(s.metrics)))
	s.routePage()
	s.mux.Handle("GET /v1/backends", s.auth(http.HandlerFunc(s.backends)))
	s.mux.Handle("POST /v1/backends/{address}/drain", s.auth(s.drain(true)))
	s.mux.Handle("POST /v1/backends/{address}/undrain", s.auth(s.drain(false)))
	s.mux.Handle("GET /v1/sessions/{id}", s.auth(http.HandlerFunc(s.session)))
	s.mux.Handle("GET /v1/members", s.auth(http.HandlerFunc(s.members)))
	s.mux.Handle("GET /v1/events", s.auth(http.HandlerFunc(s.events)))
	s.mux.Handle("GET /v1/summary", s.auth(http.HandlerFunc(s.summary)))
}

// Handler is the server's HTTP handler (tests, or mounting elsewhere).
func (s *Server) Handler() http.Handler { return s.http.Handler }

// Serve answers on l until Close; it owns l. It returns nil after Close.
func (s *Server) Serve(l net.Listener) error {
	if err := s.http.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin: serve: %w", err)
	}
	return nil
}

// Start serves l on a goroutine of the server's own, which Close waits for;
// it owns l. An error other than Close's ends it, logged.
func (s *Server) Start(l net.Listener) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.Serve(l); err != nil {
			s.log.Error("admin listener stopped", "error", err)
		}
	}()
}

// SetDraining makes /readyz answer 503 from now on: the process is
// shutting down and load balancers should stop sending it clients.
func (s *Server) SetDraining() {
	if s != nil {
		s.draining.Store(true)
	}
}

// Close stops the listener, waits up to a few seconds for requests in
// progress, closes what is left, and waits for Start's goroutine. Safe to
// call more than once.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.http.Close())
	}
	s.wg.Wait()
	return err
}

// auth requires the bearer token when one is configured. Both sides are
// hashed first, so the comparison takes the same time whatever the length.
func (s *Server) auth(next http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(given))
		if subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) != 1 || !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rpcproxy"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	switch n := s.cfg.Source.Routable(); {
	case s.draining.Load():
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "shutting down", "routable": n})
	case n == 0:
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "no routable backend", "routable": n})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "routable": n})
	}
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Metrics == nil {
		writeError(w, http.StatusNotFound, "metrics are not enabled")
		return
	}
	s.cfg.Metrics.ServeHTTP(w, r)
}

func (s *Server) backends(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, nonNil(s.cfg.Source.Backends()))
}

func (s *Server) drain(on bool) http.Handler {
	kind := KindUndrain
	if on {
		kind = KindDrain
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := r.PathValue("address")
		if err := s.cfg.Source.SetDrain(addr, on); err != nil {
			if errors.Is(err, ErrUnknownBackend) {
				writeError(w, http.StatusNotFound, err.Error())
				return
			}
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		s.log.Info("admin API", "action", kind, "backend", addr, "remote", r.RemoteAddr)
		s.cfg.Events.Add(kind, addr, "by the admin API")
		for _, b := range s.cfg.Source.Backends() {
			if b.Address == addr {
				writeJSON(w, http.StatusOK, b)
				return
			}
		}
		writeError(w, http.StatusNotFound, ErrUnknownBackend.Error())
	})
}

func (s *Server) session(w http.ResponseWriter, r *http.Request) {
	sess := s.cfg.Source.Session(r.PathValue("id"))
	sess.Holders = nonNil(sess.Holders)
	writeJSON(w, http.StatusOK, sess)
}

func (s *Server) members(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, nonNil(s.cfg.Source.Members()))
}

func (s *Server) events(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.cfg.Events.Last())
}

func (s *Server) summary(w http.ResponseWriter, _ *http.Request) {
	sum := s.cfg.Source.Summary()
	sum.Ready = !s.draining.Load() && s.cfg.Source.Routable() > 0
	if s.cfg.Counters != nil {
		req, errs := s.cfg.Counters()
		sum.RequestsPerSecond, sum.ErrorRate = s.rate.sample(time.Now(), req, errs)
	}
	if s.cfg.Turns != nil {
		if p50, p99, ok := s.cfg.Turns(); ok {
			ms50, ms99 := float64(p50)/float64(time.Millisecond), float64(p99)/float64(time.Millisecond)
			sum.TurnP50MS, sum.TurnP99MS = &ms50, &ms99
		}
	}
	writeJSON(w, http.StatusOK, sum)
}

// rateMeter turns cumulative counters into rates over the time between two
// summaries at least minRateInterval apart; in between it repeats the last.
type rateMeter struct {
	mu           sync.Mutex
	at           time.Time
	reqs, errs   uint64
	rps, errRate *float64
}

const minRateInterval = time.Second

func (m *rateMeter) sample(now time.Time, reqs, errs uint64) (rps, errRate *float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	first := m.at.IsZero()
	dt := now.Sub(m.at)
	if !first && dt < minRateInterval {
		return m.rps, m.errRate
	}
	if !first && reqs >= m.reqs && errs >= m.errs {
		r := float64(reqs-m.reqs) / dt.Seconds()
		e := 0.0
		if reqs > m.reqs {
			e = float64(errs-m.errs) / float64(reqs-m.reqs)
		}
		m.rps, m.errRate = &r, &e
	}
	m.at, m.reqs, m.errs = now, reqs, errs
	return m.rps, m.errRate
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "up -> down" reads as written
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		code = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"cannot encode the answer"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
