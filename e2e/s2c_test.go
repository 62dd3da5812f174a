package e2e

// Server→client messages on a shared upstream, against the real CLI 1.0.102.
//
// What the CLI can send to a client (its schemas/api.schema.json, clientSession
// and clientGlobal; the notification names in cli-main.js), what each carries,
// and how a client makes the CLI send it:
//
//	session.event            notification {sessionId, event}: every turn.
//	session.lifecycle        notification {type, sessionId, metadata}: the CLI sends it
//	                         to every connection it has (direct, each client sees every
//	                         session's); rpcproxy routes it by sessionId, so a client
//	                         sees only the sessions it holds on that shared upstream.
//	userInput.request        request {sessionId, question, choices, allowFreeform}: the
//	                         built-in ask_user tool, offered when the create says
//	                         requestUserInput (SDK: OnUserInputRequest). Checked here.
//	exitPlanMode.request     request {sessionId, summary, planContent, actions,
//	                         recommendedAction}: the exit_plan_mode tool in plan mode
//	                         (session.mode.set "plan"; SDK: OnExitPlanModeRequest). Checked here.
//	systemMessage.transform  request {sessionId, sections}: systemMessage mode
//	                         "customize" with a section action "transform". Checked here.
//	hooks.invoke             request {sessionId, hookType, input}: SessionConfig.Hooks
//	                         (sessionStart, userPromptSubmitted, preToolUse, postToolUse).
//	                         Checked here.
//	providerToken.getToken   request {sessionId, providerName}: a BYOK provider with
//	                         hasBearerTokenProvider (SDK: ProviderConfig.BearerTokenProvider),
//	                         before each model request. Checked here.
//	canvas.open / canvas.close / canvas.action.invoke
//	                         request {sessionId, extensionId, canvasId, instanceId, …}:
//	                         a session that declares canvases (SessionConfig.Canvases,
//	                         CanvasHandler), opened by session.canvas.open. Checked here.
//	tasks.cancel             request {sessionId, id, clientTaskId, cancellationId, reason}:
//	                         cancelling a task of kind "client" the client runs; the
//	                         CLI sends it to the connection id recorded with the task
//	                         (cli-main.js, host effect client_task_cancel). Not triggered
//	                         here: starting a client task needs an agent that spawns one.
//	workflow.execute / workflow.abort
//	                         request {sessionId, name, runId, executionToken, …}: the
//	                         CLI 1.0.102 schema names them workflow.*; the Go SDK 1.0.14
//	                         registers factory.execute/factory.abort, which this CLI never
//	                         sends (no such string in its runtime). Not triggered here.
//	skillProvider.list / skillProvider.read
//	                         request {sessionId, …}: a client skill provider; the Go SDK
//	                         1.0.14 has no handler for them. Not triggered here.
//	sessionFs.*              request {sessionId, path, …}: only after sessionFs.setProvider,
//	                         which gives the client upstreams of its own (not shared).
//	gitHubToken.getToken     request {registrationId, host, reason, sessionId?}: needs the
//	                         CLI to want a GitHub token (GitHub auth), not offline.
//	gitHubTelemetry.event    notification {restricted, event, sessionId?}: telemetry,
//	                         only with GitHub auth; rpcproxy drops it on a shared upstream.
//	autoModeSwitch.request   request {sessionId, errorCode, retryAfterSeconds}: after a
//	                         rate limit on the Copilot API with model "auto"; BYOK
//	                         sessions do not use it, so not offline.
//	llmInference.*, extensionLaunchProvider.resolve, host.*, uiThread.run,
//	installations.confirm    process-wide (no sessionId, or a host's): after a
//	                         process-wide registration (own upstreams) or for the CLI's
//	                         own UI; not sent to an SDK client on a shared upstream.
//	host.event               notification (native host channel); no SDK handles it.
//
// Seen in TestS2CRoutingOnSharedUpstream (two clients, one session each, one
// shared upstream): each client was sent session.event, session.lifecycle,
// hooks.invoke (sessionStart, userPromptSubmitted, preToolUse, postToolUse),
// systemMessage.transform, providerToken.getToken, userInput.request,
// exitPlanMode.request and canvas.open, all for its own session only. With
// the routing broken (every frame to every lane of the link) the test fails.
// In plan mode the CLI prefixes the user message with "[[PLAN]] " (planStub
// takes it out for the model stub); after an approved exit_plan_mode the CLI
// goes on with a message of its own, so that turn ends with "reply #4: …".
//
// Frames the CLI itself refuses (probed on one CLI 1.0.102 directly, by hand,
// with a ping whose params.message is padded; the CLI echoes it): a body that
// is not JSON gets -32700 with id null, connection kept; 70, 200 and 255 MiB
// bodies are answered (200 MiB in about 19 s); from 257 MiB (and at 600 MiB)
// the CLI answers -32603 "JSON-RPC connection exceeded its retained request
// byte budget" (256 MiB per connection) and keeps the connection and the
// process. rpcproxy's limits.max_frame_bytes defaults to 64 MiB, so by
// default no frame rpcproxy forwards reaches that budget; a max_frame_bytes
// above 256 MiB would let the CLI refuse it with -32603, not close.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	copilot "github.com/github/copilot-sdk/go"
	"github.com/github/copilot-sdk/go/rpc"

	"github.com/rpcproxy/rpcproxy/e2e/harness"
)

// s2cSeen is one server→client frame a tap saw.
type s2cSeen struct {
	Method, SessionID, Kind string // Kind: "request" or "notification"
}

// s2cTap relays one client connection to target and records every
// server→client request and notification on it.
type s2cTap struct {
	Addr string
	ln   net.Listener
	mu   sync.Mutex
	seen []s2cSeen
	wg   sync.WaitGroup
	errs []error
}

func startTap(t *testing.T, target string) *s2cTap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &s2cTap{Addr: ln.Addr().String(), ln: ln}
	tp.wg.Add(1)
	go func() {
		defer tp.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			tp.wg.Add(2)
			go func() { defer tp.wg.Done(); io.Copy(up, c); up.Close() }()
			go func() { defer tp.wg.Done(); tp.down(up, c); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return tp
}

// down copies frames from the proxy to the client, recording each.
func (tp *s2cTap) down(from, to net.Conn) {
	r := bufio.NewReader(from)
	for {
		hdr, err := textproto.NewReader(r).ReadMIMEHeader()
		if err != nil {
			return
		}
		n, err := strconv.Atoi(hdr.Get("Content-Length"))
		if err != nil || n < 0 {
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				SessionID string `json:"sessionId"`
			} `json:"params"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			tp.mu.Lock()
			tp.errs = append(tp.errs, fmt.Errorf("frame %q: %w", body, err))
			tp.mu.Unlock()
		} else if m.Method != "" {
			kind := "notification"
			if len(m.ID) > 0 && string(m.ID) != "null" {
				kind = "request"
			}
			tp.mu.Lock()
			tp.seen = append(tp.seen, s2cSeen{Method: m.Method, SessionID: m.Params.SessionID, Kind: kind})
			tp.mu.Unlock()
		}
		if _, err := fmt.Fprintf(to, "Content-Length: %d\r\n\r\n%s", n, body); err != nil {
			return
		}
	}
}

func (tp *s2cTap) frames() []s2cSeen {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return slices.Clone(tp.seen)
}

// s2cCalls counts, per client, the SDK callbacks that ran: "method
// detail" → session ids.
type s2cCalls struct {
	mu    sync.Mutex
	calls map[string][]string
}

func (c *s2cCalls) add(what, sid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string][]string{}
	}
	c.calls[what] = append(c.calls[what], sid)
}

func (c *s2cCalls) get(what string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls[what])
}

type s2cCanvas struct {
	copilot.CanvasHandlerDefaults
	calls *s2cCalls
}

func (h s2cCanvas) OnOpen(_ context.Context, req rpc.CanvasProviderOpenRequest) (rpc.CanvasProviderOpenResult, error) {
	h.calls.add("canvas.open", req.SessionID)
	return rpc.CanvasProviderOpenResult{Title: ptr("s2c canvas " + req.InstanceID)}, nil
}

// s2cSessionConfig is a session with every callback this file can make the
// CLI call, each recording the session it was called for.
func s2cSessionConfig(c *harness.Cluster, stubURL, id string, calls *s2cCalls) *copilot.SessionConfig {
	hook := func(name string) func(sid string) {
		return func(sid string) { calls.add("hooks.invoke "+name, sid) }
	}
	cfg := sessionConfig(c, id)
	p := *cfg.Provider
	p.BaseURL = stubURL
	p.BearerTokenProvider = func(args copilot.ProviderTokenArgs) (string, error) {
		// The token getter has no session id of its own: the SDK routes it
		// to this session's provider, so the session is id.
		calls.add("providerToken.getToken", id)
		return "e2e-placeholder", nil
	}
	cfg.Provider = &p
	cfg.Hooks = &copilot.SessionHooks{
		OnSessionStart: func(in copilot.SessionStartHookInput, inv copilot.HookInvocation) (*copilot.SessionStartHookOutput, error) {
			hook("sessionStart")(inv.SessionID)
			return nil, nil
		},
		OnUserPromptSubmitted: func(in copilot.UserPromptSubmittedHookInput, inv copilot.HookInvocation) (*copilot.UserPromptSubmittedHookOutput, error) {
			hook("userPromptSubmitted")(inv.SessionID)
			return nil, nil
		},
		OnPreToolUse: func(in copilot.PreToolUseHookInput, inv copilot.HookInvocation) (*copilot.PreToolUseHookOutput, error) {
			hook("preToolUse")(inv.SessionID)
			return nil, nil
		},
		OnPostToolUse: func(in copilot.PostToolUseHookInput, inv copilot.HookInvocation) (*copilot.PostToolUseHookOutput, error) {
			hook("postToolUse")(inv.SessionID)
			return nil, nil
		},
	}
	cfg.SystemMessage = &copilot.SystemMessageConfig{
		Mode: "customize",
		Sections: map[string]copilot.SectionOverride{
			copilot.SectionTone: {Action: "transform", Transform: func(current string) (string, error) {
				calls.add("systemMessage.transform", id)
				return current + "\n(s2c e2e " + id + ")", nil
			}},
		},
	}
	cfg.OnUserInputRequest = func(req copilot.UserInputRequest, inv copilot.UserInputInvocation) (copilot.UserInputResponse, error) {
		calls.add("userInput.request", inv.SessionID)
		return copilot.UserInputResponse{Answer: "answer for " + inv.SessionID, WasFreeform: true}, nil
	}
	cfg.OnExitPlanModeRequest = func(req copilot.ExitPlanModeRequest, inv copilot.ExitPlanModeInvocation) (copilot.ExitPlanModeResult, error) {
		calls.add("exitPlanMode.request", inv.SessionID)
		return copilot.ExitPlanModeResult{Approved: true, SelectedAction: "interactive"}, nil
	}
	cfg.Canvases = []copilot.CanvasDeclaration{{ID: "s2c-canvas", DisplayName: "s2c", Description: "e2e canvas"}}
	cfg.CanvasHandler = s2cCanvas{calls: calls}
	return cfg
}

// TestS2CRoutingOnSharedUpstream: one real CLI behind rpcproxy with
// upstream.connections_per_backend = 1, so both clients' sessions ride one
// upstream connection. Each of two Go SDK clients (each through a tap that
// records every server→client frame) has its own session and makes the CLI
// send it every server→client request that can be made offline. Every
// request and session.event reaches only the client holding the session
// (the tap sees no frame of the other client's session), each SDK callback
// runs once per call for its own session, and every turn completes with the
// model's reply carrying the callback's answer.
func TestS2CRoutingOnSharedUpstream(t *testing.T) {
	if harness.Direct() {
		t.Skip("shared upstreams are the proxy's; direct mode has no proxy")
	}
	c := harness.StartT(t, harness.Options{Backends: 1, Config: `
upstream {
  connections_per_backend = 1
}
`})
	stubURL := planStub(t, c)
	const clients = 2
	taps := make([]*s2cTap, clients)
	calls := make([]*s2cCalls, clients)
	sessions := make([]*copilot.Session, clients)
	for k := range clients {
		taps[k] = startTap(t, c.Target)
		calls[k] = &s2cCalls{}
		client := newClient(t, taps[k].Addr)
		id := fmt.Sprintf("s2c-%c", 'a'+k)
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		s, err := client.CreateSession(ctx, s2cSessionConfig(c, stubURL, id, calls[k]))
		cancel()
		if err != nil {
			t.Fatalf("session.create %s: %v", id, err)
		}
		sessions[k] = s
	}
	// Both sessions work at the same time, so the CLI's messages for the two
	// interleave on the one upstream.
	errs := parallel(clients, func(k int) error {
		s := sessions[k]
		id := s.SessionID
		check := func(prompt, want string) error {
			got, err := turn(s, prompt)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("session %s: reply to %q = %q, want %q", id, prompt, got, want)
			}
			return nil
		}
		if err := check("plain turn of "+id, "reply #1: plain turn of "+id); err != nil {
			return err
		}
		if err := check("call tool ask_user with which "+id+"?", "reply #2: tool ask_user returned: User responded: answer for "+id); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		if _, err := s.RPC.Mode.Set(ctx, &rpc.ModeSetRequest{Mode: rpc.SessionModePlan}); err != nil {
			return fmt.Errorf("session %s: session.mode.set plan: %w", id, err)
		}
		got, err := turn(s, "call tool exit_plan_mode with plan of "+id)
		if err != nil {
			return err
		}
		// Approved, the CLI leaves plan mode and the turn goes on with a
		// message of its own: the stub answers it "reply #4: …".
		if want := "reply #4:"; !strings.HasPrefix(got, want) {
			return fmt.Errorf("session %s: reply after exit_plan_mode %q, want %q…", id, got, want)
		}
		if _, err := s.RPC.Canvas.Open(ctx, &rpc.CanvasOpenRequest{CanvasID: "s2c-canvas", InstanceID: "inst-" + id}); err != nil {
			return fmt.Errorf("session %s: session.canvas.open: %w", id, err)
		}
		return nil
	})
	for _, err := range errs {
		t.Error(err)
	}

	want := []string{
		"hooks.invoke sessionStart", "hooks.invoke userPromptSubmitted", "hooks.invoke preToolUse",
		"hooks.invoke postToolUse", "systemMessage.transform", "providerToken.getToken",
		"userInput.request", "exitPlanMode.request", "canvas.open",
	}
	for k := range clients {
		own := sessions[k].SessionID
		// canvas.open comes after session.canvas.open is answered.
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		_ = harness.Eventually(ctx, "every callback", func() bool {
			for _, what := range want {
				if len(calls[k].get(what)) == 0 {
					return false
				}
			}
			return true
		})
		cancel()
		for _, what := range want {
			got := calls[k].get(what)
			if len(got) == 0 {
				t.Errorf("client %d: no %s callback for its session %s", k, what, own)
			}
			for _, sid := range got {
				if sid != own {
					t.Errorf("client %d: %s callback for session %s, not its own %s", k, what, sid, own)
				}
			}
		}
		methods := map[string]int{}
		for _, f := range taps[k].frames() {
			methods[f.Method+" ("+f.Kind+")"]++
			if f.SessionID != "" && f.SessionID != own {
				t.Errorf("client %d (session %s) was sent %s %s for session %s", k, own, f.Kind, f.Method, f.SessionID)
			}
		}
		for _, m := range []string{"session.event", "hooks.invoke", "systemMessage.transform", "providerToken.getToken", "userInput.request", "exitPlanMode.request", "canvas.open"} {
			if methods[m+" (request)"]+methods[m+" (notification)"] == 0 {
				t.Errorf("client %d: its tap saw no %s", k, m)
			}
		}
		t.Logf("client %d (session %s) was sent: %v", k, own, methods)
		taps[k].mu.Lock()
		if err := errors.Join(taps[k].errs...); err != nil {
			t.Errorf("client %d tap: %v", k, err)
		}
		taps[k].mu.Unlock()
	}
}

// planMarker is what the CLI puts before a user message in plan mode; the
// model stub reads "call tool …" only at the start of the message.
var planMarker = []byte("[[PLAN]] ")

// planStub serves the cluster's model stub on another loopback port with
// the plan-mode marker taken out of each request, so that "call tool
// exit_plan_mode with …" works in plan mode. It returns the provider base URL.
func planStub(t *testing.T, c *harness.Cluster) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = bytes.ReplaceAll(body, planMarker, nil)
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			c.Stub.ServeHTTP(w, r)
		}),
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/v1"
}
