package demo

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/approval"
	"github.com/warden-run/warden/controlplane"
	"github.com/warden-run/warden/respond"
)

// actions records what detection and response did, for the narration.
type actions struct {
	mu   sync.Mutex
	done []respond.ActionResult
	more chan struct{}
}

func newActions() *actions { return &actions{more: make(chan struct{}, 1)} }

func (a *actions) record(_ respond.Alert, r respond.ActionResult) {
	a.mu.Lock()
	a.done = append(a.done, r)
	a.mu.Unlock()
	select {
	case a.more <- struct{}{}:
	default:
	}
}

// wait returns the first action of that kind done so far, waiting up to d
// for one.
func (a *actions) wait(kind respond.ActionType, d time.Duration) *respond.ActionResult {
	deadline := time.After(d)
	for {
		a.mu.Lock()
		for i := range a.done {
			if a.done[i].Action == kind && a.done[i].Outcome == respond.OutcomeDone {
				r := a.done[i]
				a.mu.Unlock()
				return &r
			}
		}
		a.mu.Unlock()
		select {
		case <-a.more:
		case <-deadline:
			return nil
		}
	}
}

// waitApproval returns the call to tool held for a human, as an operator
// sees it over the API, waiting up to d for it.
func waitApproval(ctx context.Context, op *controlplane.Client, tool string, d time.Duration) *approval.Approval {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		as, _ := op.Approvals(ctx, string(approval.Pending), 10)
		for i := range as {
			if as[i].Tool == tool {
				return &as[i]
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// runReviewed makes a call an operator must approve: it waits for the
// call to be held, has the operator approve it over the API with note, and
// returns the call's outcome and the approval (nil when the call was not
// held).
func runReviewed(ctx context.Context, cs *mcp.ClientSession, op *controlplane.Client, agent, tool, args, note string) (Step, *approval.Approval, error) {
	done := make(chan Step, 1)
	go func() { done <- run(ctx, cs, agent, tool, args) }()
	ap := waitApproval(ctx, op, tool, 5*time.Second)
	if ap != nil {
		if _, err := op.DecideApproval(ctx, ap.ID, true, note); err != nil {
			return <-done, ap, fmt.Errorf("approving the held call: %w", err)
		}
	}
	return <-done, ap, nil
}
