package harness

import (
	"context"
	"fmt"
	"time"
)

// pollInterval is how often Eventually checks its condition.
const pollInterval = 25 * time.Millisecond

// Eventually polls cond until it holds or ctx ends; the error names what was
// awaited.
func Eventually(ctx context.Context, what string, cond func() bool) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			if cond() {
				return nil
			}
			return fmt.Errorf("harness: waiting for %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}
