// Package report holds the results of one bench run and writes them as
// Markdown, JSON and an SVG latency chart.
package report

import (
	"slices"
	"sort"
)

// Modes in the order runs alternate and tables list them.
const (
	ModeDirect   = "direct"
	ModeRPCProxy = "rpcproxy"
	ModeHAProxy  = "haproxy"
)

// Report is one bench run.
type Report struct {
	// Timestamp names the run (UTC, "20060102T150405Z").
	Timestamp string      `json:"timestamp"`
	Machine   Machine     `json:"machine"`
	Settings  Settings    `json:"settings"`
	Scenarios []*Scenario `json:"scenarios"`
	Idle      *Idle       `json:"idle,omitempty"`
	Held      *Held       `json:"held,omitempty"`
	Spread    *Spread     `json:"spread,omitempty"`
	Micro     []Micro     `json:"micro,omitempty"`
	// Budget is filled by Evaluate.
	Budget []Check  `json:"budget"`
	Notes  []string `json:"notes,omitempty"`
}

// Machine describes where the bench ran.
type Machine struct {
	NProc          int    `json:"nproc"`
	CPUModel       string `json:"cpu_model"`
	Kernel         string `json:"kernel"`
	GoVersion      string `json:"go_version"`
	HAProxyVersion string `json:"haproxy_version"`
	MemTotalMiB    int64  `json:"mem_total_mib"`
	NoFile         uint64 `json:"nofile_limit"`
}

// Settings are what every scenario shares.
type Settings struct {
	Backends      int    `json:"backends"`
	Reps          int    `json:"reps"`
	EventsPerTurn int    `json:"events_per_turn"`
	EventSizes    []int  `json:"event_sizes"`
	ProxyCommand  string `json:"proxy_command"`
	// NoLifecycle: the backends sent no session.lifecycle (a diagnosis run).
	NoLifecycle bool `json:"no_lifecycle,omitempty"`
	// ConnsPerBackend is the upstream.connections_per_backend rpcproxy was
	// run with (benchrun --connections-per-backend, else the proxy's
	// default); 0: every client's upstreams its own.
	ConnsPerBackend int `json:"connections_per_backend,omitempty"`
	// Scale multiplied every window (benchrun --scale; 0 in results written
	// before it was recorded, meaning 1).
	Scale float64 `json:"scale,omitempty"`
	// Commit is the git commit the binaries were built from, when known.
	Commit string `json:"commit,omitempty"`
}

// Load is a scenario's load.
type Load struct {
	Conns            int     `json:"conns"`
	SessionsPerConn  int     `json:"sessions_per_conn"`
	ThinkMs          float64 `json:"think_ms"`
	WindowSec        float64 `json:"window_sec"`
	WarmupSec        float64 `json:"warmup_sec"`
	PingsPerTurn     int     `json:"pings_per_turn"`
	GetMessagesEvery int     `json:"get_messages_every"`
}

// Scenario is one load played in every mode, several times.
type Scenario struct {
	Name        string         `json:"name"`
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Load        Load           `json:"load"`
	Runs        []Run          `json:"runs"`
	Modes       []*ModeSummary `json:"modes"`
}

// Run is one measured window of one mode.
type Run struct {
	Mode string `json:"mode"`
	Rep  int    `json:"rep"`

	WindowSec    float64 `json:"window_sec"`
	Turns        uint64  `json:"turns"`
	Frames       uint64  `json:"frames"`
	TurnsPerSec  float64 `json:"turns_per_sec"`
	FramesPerSec float64 `json:"frames_per_sec"`
	MBPerSec     float64 `json:"mb_per_sec"`

	// Latencies in microseconds.
	ReqP50  float64 `json:"req_p50_us"`
	ReqP99  float64 `json:"req_p99_us"`
	ReqP999 float64 `json:"req_p999_us"`
	TurnP50 float64 `json:"turn_p50_us"`
	TurnP99 float64 `json:"turn_p99_us"`

	// The proxy process (rpcproxy or haproxy); zero in direct mode.
	ProxyCPUSec          float64 `json:"proxy_cpu_sec"`
	ProxyCPUPer10kFrames float64 `json:"proxy_cpu_sec_per_10k_frames"`
	ProxyPeakRSS         int64   `json:"proxy_peak_rss_bytes"`
	// ProxySyscallsPerFrame is the proxy's read and write system calls in
	// the window over the frames the clients sent and received.
	ProxySyscallsPerFrame float64 `json:"proxy_syscalls_per_frame"`

	// The rest of the machine, for context: all share 2 cores.
	BackendCPUSec   float64 `json:"backend_cpu_sec"`
	GeneratorCPUSec float64 `json:"generator_cpu_sec"`
	MachineBusy     float64 `json:"machine_busy"`
	// BackendCPUPerTurnUs is BackendCPUSec over the turns completed in the
	// window, in microseconds: what one turn costs the CLI servers.
	BackendCPUPerTurnUs float64 `json:"backend_cpu_us_per_turn"`
	// BackendConns is the connections the backends hold at the end of the
	// window (their socket descriptors minus their listeners, summed).
	BackendConns int `json:"backend_conns"`
	// OtherCPUSec is the machine's busy CPU time in the window not spent by
	// the proxy, the backends or the generator: other users of the machine.
	OtherCPUSec float64 `json:"other_cpu_sec"`

	Lifecycle    uint64   `json:"lifecycle_notifications"`
	BadTurns     uint64   `json:"bad_turns"`
	ErrorAnswers uint64   `json:"error_answers"`
	Failures     []string `json:"failures,omitempty"`

	// CDFs of this run's latencies, for the chart. Only the summaries'
	// are written to JSON.
	TurnCDF []Point `json:"-"`
	ReqCDF  []Point `json:"-"`
}

// Point is one point of a latency CDF: Fraction of values are at most Micros.
type Point struct {
	Micros   float64 `json:"us"`
	Fraction float64 `json:"f"`
}

// ModeSummary is the median over a mode's repetitions.
type ModeSummary struct {
	Mode string `json:"mode"`
	Reps int    `json:"reps"`
	// Median is a Run whose every number is the median of that number over
	// the repetitions (so its figures may come from different runs).
	Median Run `json:"median"`
	// TurnCDF and ReqCDF are those of the repetition with the median turn p99.
	TurnCDF []Point `json:"turn_cdf,omitempty"`
	ReqCDF  []Point `json:"req_cdf,omitempty"`
	// Failed counts repetitions with failures, bad turns or error answers.
	Failed int `json:"failed"`
}

// Idle is the memory cost of idle client connections on the proxy.
type Idle struct {
	Conns        int     `json:"conns"`
	Backend      string  `json:"backend"`
	SetupSec     float64 `json:"setup_sec"`
	RSSBefore    int64   `json:"rss_before_bytes"`
	RSSAfter     int64   `json:"rss_after_bytes"`
	PeakAfter    int64   `json:"peak_rss_bytes"`
	PerConnBytes float64 `json:"per_conn_bytes"`
	Alive        int     `json:"alive"`
	Note         string  `json:"note,omitempty"`
	// ConnectOnly is measured when Conns had to be lowered: the full count
	// of connections that did connect only (no session, so no upstream).
	ConnectOnly *ConnectOnly `json:"connect_only,omitempty"`
}

// ConnectOnly is the cost of SDK connections that did connect only.
type ConnectOnly struct {
	Conns        int     `json:"conns"`
	RSSBefore    int64   `json:"rss_before_bytes"`
	RSSAfter     int64   `json:"rss_after_bytes"`
	PerConnBytes float64 `json:"per_conn_bytes"`
	Alive        int     `json:"alive"`
}

// Held is the cost of many sessions held open on the proxy.
type Held struct {
	Conns           int     `json:"conns"`
	Sessions        int     `json:"sessions"`
	Backend         string  `json:"backend"`
	SetupSec        float64 `json:"setup_sec"`
	RSSBefore       int64   `json:"rss_before_bytes"`
	RSSAfter        int64   `json:"rss_after_bytes"`
	PeakAfter       int64   `json:"peak_rss_bytes"`
	PerSessionBytes float64 `json:"per_session_bytes"`
	Alive           int     `json:"alive"`
}

// Spread is SDK connections held open, each with a session on every
// backend: the connections the proxy must hold within the open files limit.
// With one upstream per client per backend each client costs the proxy
// 1+B descriptors; with shared upstreams 1.
type Spread struct {
	// Want is the connections asked for; Conns those opened (Want lowered
	// to fit the open files limit at FDsPerClient descriptors each).
	Want         int     `json:"want"`
	Conns        int     `json:"conns"`
	Backends     int     `json:"backends"`
	FDsPerClient int     `json:"fds_per_client"`
	NoFile       uint64  `json:"nofile_limit"`
	Alive        int     `json:"alive"`
	Sessions     int     `json:"sessions"`
	BackendConns int     `json:"backend_conns"`
	ProxyFDs     int     `json:"proxy_fds"`
	SetupSec     float64 `json:"setup_sec"`
	RSSBefore    int64   `json:"rss_before_bytes"`
	RSSAfter     int64   `json:"rss_after_bytes"`
	PerConnBytes float64 `json:"per_conn_bytes"`
	// PerSessionBytes is the same growth over the sessions.
	PerSessionBytes float64 `json:"per_session_bytes"`
	Backend         string  `json:"backend"`
}

// Micro is one testing.B result.
type Micro struct {
	Name        string  `json:"name"`
	NsPerOp     float64 `json:"ns_per_op"`
	MBPerSec    float64 `json:"mb_per_sec,omitempty"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
}

// Check is one line of the performance budget.
type Check struct {
	What     string `json:"what"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	// Status is "met", "missed" or "n/a".
	Status string `json:"status"`
}

// Summarize fills s.Modes from s.Runs.
func (s *Scenario) Summarize() {
	s.Modes = nil
	for _, mode := range []string{ModeDirect, ModeRPCProxy, ModeHAProxy} {
		var runs []Run
		for _, r := range s.Runs {
			if r.Mode == mode {
				runs = append(runs, r)
			}
		}
		if len(runs) == 0 {
			continue
		}
		s.Modes = append(s.Modes, summarize(mode, runs))
	}
}

// Mode returns the summary of a mode, or nil.
func (s *Scenario) Mode(mode string) *ModeSummary {
	for _, m := range s.Modes {
		if m.Mode == mode {
			return m
		}
	}
	return nil
}

func summarize(mode string, runs []Run) *ModeSummary {
	ms := &ModeSummary{Mode: mode, Reps: len(runs)}
	med := func(get func(*Run) float64) float64 {
		v := make([]float64, len(runs))
		for i := range runs {
			v[i] = get(&runs[i])
		}
		return median(v)
	}
	m := &ms.Median
	m.Mode = mode
	m.WindowSec = med(func(r *Run) float64 { return r.WindowSec })
	m.Turns = uint64(med(func(r *Run) float64 { return float64(r.Turns) }))
	m.Frames = uint64(med(func(r *Run) float64 { return float64(r.Frames) }))
	m.TurnsPerSec = med(func(r *Run) float64 { return r.TurnsPerSec })
	m.FramesPerSec = med(func(r *Run) float64 { return r.FramesPerSec })
	m.MBPerSec = med(func(r *Run) float64 { return r.MBPerSec })
	m.ReqP50 = med(func(r *Run) float64 { return r.ReqP50 })
	m.ReqP99 = med(func(r *Run) float64 { return r.ReqP99 })
	m.ReqP999 = med(func(r *Run) float64 { return r.ReqP999 })
	m.TurnP50 = med(func(r *Run) float64 { return r.TurnP50 })
	m.TurnP99 = med(func(r *Run) float64 { return r.TurnP99 })
	m.ProxyCPUSec = med(func(r *Run) float64 { return r.ProxyCPUSec })
	m.ProxyCPUPer10kFrames = med(func(r *Run) float64 { return r.ProxyCPUPer10kFrames })
	m.ProxyPeakRSS = int64(med(func(r *Run) float64 { return float64(r.ProxyPeakRSS) }))
	m.ProxySyscallsPerFrame = med(func(r *Run) float64 { return r.ProxySyscallsPerFrame })
	m.BackendCPUSec = med(func(r *Run) float64 { return r.BackendCPUSec })
	m.GeneratorCPUSec = med(func(r *Run) float64 { return r.GeneratorCPUSec })
	m.MachineBusy = med(func(r *Run) float64 { return r.MachineBusy })
	m.BackendCPUPerTurnUs = med(func(r *Run) float64 { return r.BackendCPUPerTurnUs })
	m.BackendConns = int(med(func(r *Run) float64 { return float64(r.BackendConns) }))
	m.OtherCPUSec = med(func(r *Run) float64 { return r.OtherCPUSec })
	m.Lifecycle = uint64(med(func(r *Run) float64 { return float64(r.Lifecycle) }))
	for _, r := range runs {
		m.BadTurns += r.BadTurns
		m.ErrorAnswers += r.ErrorAnswers
		m.Failures = append(m.Failures, r.Failures...)
		if len(r.Failures) > 0 || r.BadTurns > 0 || r.ErrorAnswers > 0 {
			ms.Failed++
		}
	}
	byP99 := slices.Clone(runs)
	sort.SliceStable(byP99, func(i, j int) bool { return byP99[i].TurnP99 < byP99[j].TurnP99 })
	mid := byP99[(len(byP99)-1)/2]
	ms.TurnCDF, ms.ReqCDF = mid.TurnCDF, mid.ReqCDF
	return ms
}

// median of v (the mean of the middle two for an even count); 0 when empty.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
