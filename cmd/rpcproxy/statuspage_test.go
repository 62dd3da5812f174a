package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/rpcproxy/rpcproxy/internal/fakecli"
)

// The status page in a real browser: headless Chromium driven over the
// DevTools protocol (chromedp). scripts/install-chromium.sh installs it
// (make unit runs it); without it these tests skip, unless E2E_REQUIRED=1.

// screenshotPath is where TestStatusPageFollowsPool saves its screenshot:
// the README's docs/status-page.png with UPDATE_SCREENSHOT=1 (regenerate it
// when the page changes), a temporary file otherwise.
func screenshotPath(t *testing.T) string {
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		return filepath.Join("..", "..", "docs", "status-page.png")
	}
	return filepath.Join(t.TempDir(), "status-page.png")
}

// pageProblems collects what a tab reports as wrong: uncaught exceptions,
// and console errors such as a resource the Content-Security-Policy blocked
// or a request that failed.
type pageProblems struct {
	mu   sync.Mutex
	list []string
}

func (p *pageProblems) listen(ev any) {
	var problem string
	switch e := ev.(type) {
	case *cdplog.EventEntryAdded:
		if e.Entry.Level == cdplog.EntryLevelError || e.Entry.Source == cdplog.EntrySourceSecurity {
			problem = fmt.Sprintf("%s %s: %s %s", e.Entry.Level, e.Entry.Source, e.Entry.Text, e.Entry.URL)
		}
	case *cdpruntime.EventExceptionThrown:
		problem = (&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error()
	}
	if problem != "" {
		p.mu.Lock()
		p.list = append(p.list, problem)
		p.mu.Unlock()
	}
}

// get returns the problems so far.
func (p *pageProblems) get() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.list...)
}

// browser starts headless Chromium for the test and returns a context for
// a first tab, and what that tab reports as wrong; the browser stops when
// the test ends.
func browser(t *testing.T) (context.Context, *pageProblems) {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("E2E_REQUIRED") == "1" {
			t.Fatal("chromium not found and E2E_REQUIRED=1: run scripts/install-chromium.sh")
		}
		t.Skip("chromium not found: run scripts/install-chromium.sh (make unit does) to test the status page in a browser")
	}
	// The machine may have no network: without the background-networking
	// flags Chromium keeps trying to reach Google.
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	// The browser lives as long as the context of its first run: at most
	// two minutes, the bound of the whole test.
	bound, cancelBound := context.WithTimeout(context.Background(), 2*time.Minute)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(bound, opts...)
	problems := &pageProblems{}
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf), chromedp.WithListener(problems.listen))
	t.Cleanup(func() { cancelCtx(); cancelAlloc(); cancelBound() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser and its first tab
		t.Fatalf("start chromium: %v", err)
	}
	return ctx, problems
}

// newTab opens another tab of ctx's browser: its own sessionStorage.
func newTab(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("new tab: %v", err)
	}
	return tab
}

// pageStates reads the backends table: each row's address and the text of
// its state badge, which must name the state as its class and data do (a
// state is told by its word, not by colour alone).
const pageStates = `(() => {
  const out = {};
  for (const row of document.querySelectorAll('#backends tbody tr[data-backend]')) {
    const badge = row.querySelector('.state');
    const word = badge ? badge.textContent.replace(/[^a-z]/g, '') : '';
    const ok = badge && badge.dataset.state === word && badge.classList.contains('state-' + word) && row.dataset.state === word;
    out[row.dataset.backend] = ok ? word : 'mismatch:' + (badge ? badge.outerHTML : row.outerHTML);
  }
  return out;
})()`

// waitPage evaluates expr in the tab every 100ms until check accepts its
// value, or fails the test after 15s with the last value.
func waitPage[T any](t *testing.T, ctx context.Context, what, expr string, check func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var v T
	for {
		var err error
		if v, err = chromedp.Run(ctx, chromedp.Evaluate[T](expr)); err == nil && check(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s on the page: last %v (%v)", what, v, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The page against a live pool of three: every backend shows with its
// state; a drain over the API and a killed backend show on the same page,
// without a reload, as draining and down, with their events; the totals
// count the sessions, and turn percentiles show "—" until a turn ran.
func TestStatusPageFollowsPool(t *testing.T) {
	ctx, problems := browser(t)
	cfg, fakes := staticFakes(t, 3)
	p := startAdminProxy(t, cfg)
	waitFor(t, "three backends checked", func() bool {
		bs := p.backends(t)
		for _, f := range fakes {
			if !bs[f.Addr()].LastCheck.OK {
				return false
			}
		}
		return true
	})
	// A few sessions over two clients, so the page has something to count.
	c1, c2 := sdkClient(t, p.listen), sdkClient(t, p.listen)
	// Six session ids, on at least two backends (the ring decides; ports are
	// random): one backend holding some is drained, another killed.
	var ids []string
	owners := map[string]bool{}
	for i := 0; len(ids) < 6; i++ {
		sid := fmt.Sprintf("user-%d-chat", i)
		owner := p.session(t, sid).Owner
		if len(ids) == 5 && len(owners) == 1 && owners[owner] {
			continue // the sixth must land elsewhere
		}
		ids = append(ids, sid)
		owners[owner] = true
	}
	sessions := map[string]*fakecli.Client{}
	for i, sid := range ids {
		c := c1
		if i%2 == 1 {
			c = c2
		}
		call(t, c, "session.create", map[string]any{"sessionId": sid})
		sessions[sid] = c
	}

	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+p.admin+"/")); err != nil {
		t.Fatal(err)
	}
	allUp := func(m map[string]string) bool {
		for _, f := range fakes {
			if m[f.Addr()] != "up" {
				return false
			}
		}
		return len(m) == 3
	}
	waitPage(t, ctx, "three backends up", pageStates, allUp)
	// The policy let the page's own style sheet and icon in.
	waitPage(t, ctx, "the style sheet and the icon", `getComputedStyle(document.body).backgroundColor + ' ' +
		(document.querySelector('.brand img').naturalWidth > 0)`, func(s string) bool { return s == "rgb(245, 247, 250) true" })
	waitPage(t, ctx, "the totals", `[document.getElementById('t-sessions').textContent, document.getElementById('t-clients').textContent,
		document.getElementById('t-backends').textContent, document.getElementById('t-rps').textContent,
		document.getElementById('t-p50').textContent, document.getElementById('ready').textContent].join('|')`,
		func(s string) bool {
			// No turn yet: no turn percentiles. The request rate is "—" on
			// the first summary and a number from the next one on.
			f := strings.Split(s, "|")
			return len(f) == 6 && f[0] == "6" && f[1] == "2" && f[2] == "3" && f[4] == "—" && f[5] == "Ready" &&
				(f[3] == "—" || strings.ContainsAny(f[3], "0123456789"))
		})

	// A mark in the page's JavaScript globals, which a reload would wipe.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.rpcproxyTestMark = 'same page'`)); err != nil {
		t.Fatal(err)
	}

	drained := p.session(t, ids[0]).Backend
	var killed, up string
	for _, sid := range ids[1:] {
		if b := p.session(t, sid).Backend; b != drained {
			killed = b
			break
		}
	}
	byAddr := map[string]*fakecli.Server{}
	for _, f := range fakes {
		byAddr[f.Addr()] = f
		if f.Addr() != drained && f.Addr() != killed {
			up = f.Addr()
		}
	}
	if code, body := p.do(t, "POST", "/v1/backends/"+drained+"/drain", ""); code != 200 {
		t.Fatalf("drain: %d %s", code, body)
	}
	byAddr[killed].Close()
	states := waitPage(t, ctx, "draining and down", pageStates, func(m map[string]string) bool {
		return m[drained] == "draining" && m[killed] == "down" && m[up] == "up"
	})
	t.Logf("states on the page: %v", states)
	// A turn on every session: those on the drained backend move, those on
	// the killed one fail over; the page lists each kind of event.
	for sid, c := range sessions {
		turnOn(t, c, sid, "after the drain and the crash")
	}
	// Each row as kind|backend|detail, from its cells' text.
	eventRows := `[...document.querySelectorAll('#events tbody tr')].map(r =>
		[r.cells[1].textContent, r.cells[2].textContent, r.cells[3].textContent].join('|')).join('\n')`
	waitPage(t, ctx, "the events", eventRows, func(s string) bool {
		for _, want := range []string{
			"state|" + killed + "|up -> down", "state|" + drained + "|up -> draining", "drain|" + drained + "|by the admin API",
			"move|" + drained + "|session ", "failover|" + killed + "|session ",
		} {
			if !strings.Contains(s, want) {
				return false
			}
		}
		return true
	})
	waitPage(t, ctx, "turn percentiles after the turns", `document.getElementById('t-p50').textContent`,
		func(s string) bool { return strings.ContainsAny(s, "0123456789") })
	waitPage(t, ctx, "every session on the one backend up", `document.getElementById('t-sessions').textContent + ' ' +
		document.querySelector('#backends tr[data-backend="`+up+`"] td.num').textContent`,
		func(s string) bool { return s == "6 6" })
	waitPage(t, ctx, "the down backend's failed check", `document.querySelector('#backends tr[data-backend="`+killed+`"] .check-failed') !== null`,
		func(b bool) bool { return b })
	if mark, err := chromedp.Run(ctx, chromedp.Evaluate[string](`String(window.rpcproxyTestMark)`)); err != nil || mark != "same page" {
		t.Fatalf("the page reloaded (mark %q, %v)", mark, err)
	}

	if got := problems.get(); len(got) > 0 {
		t.Fatalf("the page reported problems:\n%s", strings.Join(got, "\n"))
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := screenshotPath(t)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}

// With admin.token set the page asks for it: without it, a clear 401
// message and no data; with ?token= it shows the pool and drops the token
// from the address bar; a token typed into the prompt works too.
func TestStatusPageToken(t *testing.T) {
	ctx, problems := browser(t)
	cfg, fakes := staticFakes(t, 1)
	cfg.Admin.Token = "s3cret-admin"
	p := startAdminProxy(t, cfg)
	page := "http://" + p.admin + "/"
	authText := `(() => { const a = document.getElementById('auth');
		return a.hidden ? '' : document.getElementById('auth-message').textContent; })()`
	dashboardRows := `document.getElementById('dashboard').hidden ? -1 : document.querySelectorAll('#backends tbody tr').length`

	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	msg := waitPage(t, ctx, "the token message", authText, func(s string) bool { return s != "" })
	if !strings.Contains(msg, "401") || !strings.Contains(msg, "token") {
		t.Fatalf("message without a token: %q", msg)
	}
	if rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](dashboardRows)); err != nil || rows != -1 {
		t.Fatalf("without a token the dashboard shows (%d, %v)", rows, err)
	}

	// A wrong token in the prompt: refused, said so.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("auth-token"), "wrong"),
		chromedp.Click(chromedp.ID("auth-submit")),
	); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, "the refusal", authText, func(s string) bool { return strings.Contains(s, "refused") })
	// The right one: the pool shows.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("auth-token"), "s3cret-admin"),
		chromedp.Click(chromedp.ID("auth-submit")),
	); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, "the pool after the prompt", pageStates, func(m map[string]string) bool { return m[fakes[0].Addr()] == "up" })

	// ?token= in a fresh tab (its own sessionStorage).
	tab := newTab(t, ctx)
	if err := chromedp.Do(tab, chromedp.Navigate(page+"?token=s3cret-admin")); err != nil {
		t.Fatal(err)
	}
	waitPage(t, tab, "the pool with ?token=", pageStates, func(m map[string]string) bool { return m[fakes[0].Addr()] == "up" })
	if loc, err := chromedp.Run(tab, chromedp.Location()); err != nil || strings.Contains(loc, "token") {
		t.Fatalf("the address bar keeps the token: %q (%v)", loc, err)
	}
	// The 401 answers show in the console as failed loads; nothing else may.
	for _, problem := range problems.get() {
		if !strings.Contains(problem, "status of 401") {
			t.Errorf("the page reported: %s", problem)
		}
	}
}
