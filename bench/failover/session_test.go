package failover

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/fakecli"
)

// newSessionID returns a random UUID, as the SDK names sessions.
func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// createSession creates a session as the SDK does (a tool, a BYOK
// provider) and returns the server that took it (the fake's --name).
func createSession(cl *fakecli.Client, sid string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var res struct {
		Server string `json:"server"`
	}
	err := cl.Call(ctx, "session.create", map[string]any{
		"sessionId": sid, "model": "gpt-4.1", "requestPermission": true,
		"tools":    []map[string]any{{"name": "lookup", "description": "looks a key up", "parameters": map[string]any{}}},
		"provider": map[string]any{"type": "openai", "baseUrl": "http://127.0.0.1:1/v1", "apiKey": "bench-key"},
	}, &res)
	if err != nil {
		return "", fmt.Errorf("session.create %s: %w", sid, err)
	}
	if res.Server == "" {
		return "", fmt.Errorf("session.create %s: no server in the result", sid)
	}
	return res.Server, nil
}

// answer is what the fake says at the end of a turn: "echo from <server>:
// <prompt> (turn <n>)", n counting the session's turns in the shared store.
type answer struct {
	server string
	turn   int
}

var answerPattern = regexp.MustCompile(`^echo from (\S+): .* \(turn (\d+)\)$`)

// collectTurn waits for the end of the session's turn and returns its answer.
func collectTurn(cl *fakecli.Client, sid string, d time.Duration) (answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	evs, err := cl.Collect(ctx, sid, "session.idle")
	if err != nil {
		return answer{}, fmt.Errorf("waiting for session.idle of %s: %w", sid, err)
	}
	for _, ev := range evs {
		if ev.Type != "assistant.message" {
			continue
		}
		var data struct {
			Content string `json:"content"`
		}
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			return answer{}, fmt.Errorf("%s: assistant.message: %w", sid, err)
		}
		m := answerPattern.FindStringSubmatch(data.Content)
		if m == nil {
			return answer{}, fmt.Errorf("%s: unexpected answer %q", sid, data.Content)
		}
		n, _ := strconv.Atoi(m[2])
		return answer{server: m[1], turn: n}, nil
	}
	return answer{}, fmt.Errorf("%s: turn ended without an assistant.message", sid)
}

// Retry policy of the benchmark's application, what an SDK user would do
// with the proxy's retryable errors: retry at once, then every retryDelay.
const (
	retryDelay  = 10 * time.Millisecond
	maxAttempts = 500
)

// Codes the proxy documents as retryable (data.retryable is true for
// them). fakecli.RPCError does not carry data, so the code decides.
const (
	codeBackendUnavailable = -32030
	codeNoBackend          = -32031
)

func retryable(err error) (int, bool) {
	var re *fakecli.RPCError
	if errors.As(err, &re) && (re.Code == codeBackendUnavailable || re.Code == codeNoBackend) {
		return re.Code, true
	}
	return 0, false
}

// sendOutcome times one session.send that may need retries, from start.
type sendOutcome struct {
	firstReply time.Duration // first response of any kind (maybe a retryable error)
	answered   time.Duration // the successful response
	retries    int
	codes      []int // codes of the retryable errors, in order
}

// sendRetrying sends session.send until it succeeds, retrying the proxy's
// retryable errors after retryDelay, within limit of start.
func sendRetrying(cl *fakecli.Client, sid, prompt string, start time.Time, limit time.Duration) (sendOutcome, error) {
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(limit))
	defer cancel()
	var o sendOutcome
	for attempt := 1; ; attempt++ {
		err := cl.Call(ctx, "session.send", map[string]any{"sessionId": sid, "prompt": prompt}, nil)
		var re *fakecli.RPCError
		if o.firstReply == 0 && (err == nil || errors.As(err, &re)) {
			o.firstReply = time.Since(start)
		}
		if err == nil {
			o.answered = time.Since(start)
			return o, nil
		}
		code, ok := retryable(err)
		if !ok {
			return o, fmt.Errorf("session.send %s (attempt %d, %v after start): %w", sid, attempt, time.Since(start).Round(time.Millisecond), err)
		}
		o.retries++
		o.codes = append(o.codes, code)
		if attempt >= maxAttempts {
			return o, fmt.Errorf("session.send %s: still %w after %d attempts", sid, err, attempt)
		}
		if attempt == 1 {
			continue
		}
		timer := time.NewTimer(retryDelay)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return o, fmt.Errorf("session.send %s: no answer within %v (last error: %w)", sid, limit, err)
		}
	}
}

// turnRetrying plays one whole turn with retries and returns its answer.
func turnRetrying(cl *fakecli.Client, sid, prompt string) (answer, sendOutcome, error) {
	o, err := sendRetrying(cl, sid, prompt, time.Now(), turnTimeout)
	if err != nil {
		return answer{}, o, err
	}
	a, err := collectTurn(cl, sid, turnTimeout)
	return a, o, err
}
