package redteam

import (
	"bytes"
	"encoding/json"
)

// Held is a call the gateway holds for a human, as the reviewer sees it.
type Held struct {
	Task *Task // the user task the call is made for
	Tool string
	Args json.RawMessage
}

// Reviewer is the simulated human who approves or denies held calls.
type Reviewer interface {
	Approve(h Held) bool
}

// ExpectedCalls is the simulated reviewer the issue describes: it approves
// a call only when it is, exactly (tool and arguments), one of the calls
// the user task lists, and denies everything else.
type ExpectedCalls struct{}

// Approve implements Reviewer.
func (ExpectedCalls) Approve(h Held) bool {
	if h.Task == nil {
		return false
	}
	var args map[string]any
	if len(bytes.TrimSpace(h.Args)) > 0 {
		if err := json.Unmarshal(h.Args, &args); err != nil {
			return false
		}
	}
	want := callKey(h.Tool, args)
	for _, c := range h.Task.Calls {
		if callKey(c.Tool, normalizeArgs(c.Args)) == want {
			return true
		}
	}
	return false
}

// normalizeArgs makes YAML-decoded arguments compare like JSON-decoded ones
// (integers become float64).
func normalizeArgs(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(jsonable(m))
	if err != nil {
		return m
	}
	var out map[string]any
	if json.Unmarshal(b, &out) != nil {
		return m
	}
	return out
}

// DenyAll denies every held call: what the gateway does while no human
// answers.
type DenyAll struct{}

// Approve implements Reviewer.
func (DenyAll) Approve(Held) bool { return false }
