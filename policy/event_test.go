package policy

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/warden-run/warden/events"
)

func TestDecisionEvent(t *testing.T) {
	e := NewEngine(exampleSet(t))
	e.version = 7
	req := call(financeAgent(), payTool, `{"amount": 10}`)
	req.Session = Session{ID: "s-9", Tainted: true}

	d := e.Decide(context.Background(), req)
	ev := DecisionEvent(req, d)
	if ev.ClassUID != events.ClassAPIActivity || ev.TypeUID != 600399 || ev.ActivityID != 99 {
		t.Errorf("class %d type %d activity %d", ev.ClassUID, ev.TypeUID, ev.ActivityID)
	}
	if ev.ActionID != events.ActionDenied || ev.DispositionID != events.DispositionBlocked || ev.StatusID != events.StatusFailure {
		t.Errorf("action %d disposition %d status %d", ev.ActionID, ev.DispositionID, ev.StatusID)
	}
	if ev.Policy == nil || ev.Policy.UID != "no-egress-when-tainted" || ev.Policy.Version != "7" || ev.Policy.Name != "warden.cedar" {
		t.Errorf("policy %+v", ev.Policy)
	}
	if ev.StatusCode != "policy_forbid" || !strings.Contains(ev.StatusDetail, "untrusted content") {
		t.Errorf("status %q %q", ev.StatusCode, ev.StatusDetail)
	}
	if ev.Actor.User.UID != req.Agent.SPIFFEID || ev.Actor.Session.UID != "s-9" || ev.Metadata.CorrelationUID != "t-1" {
		t.Errorf("actor %+v %+v", ev.Actor.User, ev.Metadata)
	}
	if len(ev.Resources) != 1 || ev.Resources[0].UID != "payments.pay" || ev.Resources[0].Type != "tool" || ev.Warden.Tool != "payments.pay" {
		t.Errorf("resources %+v %+v", ev.Resources, ev.Warden)
	}
	if len(ev.Metadata.Profiles) != 1 || ev.Metadata.Profiles[0] != "security_control" {
		t.Errorf("profiles %v", ev.Metadata.Profiles)
	}
	if _, err := json.Marshal(ev); err != nil {
		t.Fatal(err)
	}

	req.Session.Tainted = false
	allow := DecisionEvent(req, e.Decide(context.Background(), req))
	if allow.ActionID != events.ActionAllowed || allow.DispositionID != events.DispositionAllowed || allow.Policy.UID != "finance-payments" {
		t.Errorf("allowed: %+v %+v", allow, allow.Policy)
	}

	read := Request{Agent: financeAgent(), Action: Read, Target: Memory{Namespace: "teams/finance"}, Task: Task{ID: "t"}}
	if ev := DecisionEvent(read, e.Decide(context.Background(), read)); ev.ActivityID != events.ActivityRead || ev.Resources[0].Type != "memory" {
		t.Errorf("read: activity %d resources %+v", ev.ActivityID, ev.Resources)
	}
	var nilEngine *Engine
	if ev := DecisionEvent(read, nilEngine.Decide(context.Background(), read)); ev.StatusCode != "policy_unavailable" || ev.Policy != nil {
		t.Errorf("unavailable: %+v", ev)
	}
}
