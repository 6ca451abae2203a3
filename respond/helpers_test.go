package respond

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/warden-run/warden/events"
)

var ctx = context.Background()

// base is the time test events start at (ms): now, so that the engine's
// wall-clock sweep of expired windows agrees with the events' times.
var base = time.Now().Truncate(time.Second).UnixMilli()

const (
	agentA = "spiffe://example.org/agent/a"
	agentB = "spiffe://example.org/agent/b"
)

// ev is a compact event description for tables.
type ev struct {
	at     time.Duration // after base
	class  events.Class
	agent  string
	task   string
	tool   string
	reason string
	kind   string // finding type
	attrs  map[string]string
	feat   string
	uid    string
	action events.Action // for a finding: what the control did (0: unset)
}

func (x ev) event() events.Event {
	class := x.class
	if class == 0 {
		class = events.ClassAPIActivity
	}
	feat := x.feat
	if feat == "" {
		feat = "authz"
		if class == events.ClassDetectionFinding {
			feat = "inspect"
		}
	}
	e := events.New(class, events.ActivityCreate, feat)
	e.Time = base + x.at.Milliseconds()
	if x.uid != "" {
		e.Metadata.UID = x.uid
	}
	if x.agent != "" {
		e.Actor = &events.Actor{User: &events.User{UID: x.agent, Type: "agent"}, Session: &events.Session{UID: "s-" + x.agent}}
	}
	e.Warden = &events.Warden{Agent: x.agent, Task: x.task, Tool: x.tool, Reason: x.reason, Attrs: x.attrs}
	if class == events.ClassAPIActivity && feat == "authz" {
		e.API = &events.API{Operation: "call"}
		if x.reason == "allow" {
			e.ActionID = events.ActionAllowed
		} else {
			e.ActionID = events.ActionDenied
		}
	}
	if feat == "sandbox" {
		e.API = &events.API{Operation: "sandbox.egress"}
	}
	if x.action != 0 {
		e.ActionID = x.action
	}
	if x.kind != "" {
		e.FindingInfo = &events.FindingInfo{UID: e.Metadata.UID, Title: x.kind, Types: []string{x.kind}}
	}
	return e
}

func compileYAML(t testing.TB, y string) *RuleSet {
	t.Helper()
	docs, err := ParseFile("test.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Compile(docs)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func builtinRules(t testing.TB) *RuleSet {
	t.Helper()
	docs, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Compile(docs)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// labelsOf is a tool catalogue for tests.
func labelsOf(tool string) ([]string, bool) {
	switch tool {
	case "files.read":
		return []string{"reads"}, true
	case "web.fetch":
		return []string{"reads", "egress", "untrusted_output"}, true
	case "email.send":
		return []string{"egress"}, true
	case "files.write":
		return []string{"writes"}, true
	}
	return nil, false
}

// replay runs events through a fresh evaluator and returns the alerts.
func replay(rs *RuleSet, evs []ev) []Alert {
	e := newEvaluator(rs, labelsOf, 0, slog.New(slog.DiscardHandler))
	var out []Alert
	for _, x := range evs {
		evt := x.event()
		out = e.process(&evt, out)
	}
	return out
}

func fired(as []Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Rule)
	}
	return out
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }
