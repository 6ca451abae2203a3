package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warden-run/warden/approval"
	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/store"
)

func TestRespondValidate(t *testing.T) {
	ctx := context.Background()
	out, err := run(ctx, "respond", "validate")
	if err != nil || !strings.Contains(out, "valid: 13 rules") || !strings.Contains(out, "denied-then-retried") {
		t.Fatalf("%v\n%s", err, out)
	}
	dir := t.TempDir()
	mine := filepath.Join(dir, "mine.yaml")
	os.WriteFile(mine, []byte(`
id: big-payment
title: A large payment
level: high
condition: tool == "payments.send_payment" && reason == "allow" && has(attrs.amount) && double(attrs.amount) > 1000.0
playbook: hold-agent
---
id: new-egress-domain
enabled: false
condition: 'true'
`), 0o600)
	out, err = run(ctx, "respond", "validate", mine)
	if err != nil || !strings.Contains(out, "valid: 13 rules") || !strings.Contains(out, "big-payment") || strings.Contains(out, "new-egress-domain") {
		t.Fatalf("%v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("id: b\ncondition: reasn == 'x'\n---\nid: c\ncondition: 'true'\nplaybook: nope\n"), 0o600)
	_, err = run(ctx, "respond", "validate", bad)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml#1") || !strings.Contains(err.Error(), "undeclared reference") || !strings.Contains(err.Error(), `playbook "nope"`) {
		t.Fatalf("bad file: %v", err)
	}
	if _, err := run(ctx, "respond", "validate", "--no-builtin", mine); err == nil || !strings.Contains(err.Error(), "hold-agent") {
		t.Fatalf("without the built-in playbooks: %v", err)
	}
	out, err = run(ctx, "respond", "fields")
	if err != nil || !strings.Contains(out, "finding_types") {
		t.Fatalf("fields: %v\n%s", err, out)
	}
	out, err = run(ctx, "respond", "builtin")
	if err != nil || !strings.Contains(out, "playbook: contain-task") {
		t.Fatalf("builtin: %v", err)
	}
}

// `warden respond test` replays events and prints what fires.
func TestRespondTestReplays(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.jsonl")
	sink, err := events.OpenJSONL(path)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().UnixMilli()
	for i := range 3 {
		e := events.New(events.ClassAPIActivity, events.ActivityCreate, "authz")
		e.Time = base + int64(i)*20_000
		e.ActionID = events.ActionDenied
		e.Warden = &events.Warden{Agent: "spiffe://example.org/agent/a", Task: "t_1", Tool: "payments.send_payment", Reason: "constraint_violated"}
		if err := sink.Emit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	sink.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("not an event\n")
	f.Close()
	out, err := run(ctx, "respond", "test", "--events", path)
	if err != nil || !strings.Contains(out, "FIRE denied-then-retried") || !strings.Contains(out, "3 events (0 duplicates, 1 lines not events), 1 alerts") {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err = run(ctx, "respond", "test", "--events", path, "-o", "json")
	var a struct {
		Rule  string  `json:"rule"`
		Value float64 `json:"value"`
	}
	if err != nil || json.Unmarshal([]byte(strings.Split(out, "\n")[0]), &a) != nil || a.Rule != "denied-then-retried" || a.Value != 3 {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if _, err := run(ctx, "respond", "test"); err == nil {
		t.Fatal("no --events accepted")
	}
}

// `warden approvals` against a running `warden serve`: a held call is
// listed, an operator approves it, and the identical call then goes
// through once.
func TestApprovalsCLI(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), ".warden")
	serve(t, dir)
	out, err := run(ctx, "approvals", "list", "--dir", dir)
	if err != nil || !strings.Contains(out, "no approvals") {
		t.Fatalf("%v\n%s", err, out)
	}
	// a held call, as the gateway's approval stage makes one, in the same
	// database
	db, err := store.Open(ctx, config.Dir(dir).Database())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc, err := approval.Open(ctx, approval.Options{DB: db, Events: &events.Recorder{}, Wait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	req := approval.Request{Agent: "spiffe://example.org/agent/pay-bot", Task: "t_1", Tool: "payments.send_payment",
		Args: json.RawMessage(`{"to": "acct-supplier", "amount": 420}`), Rule: "tier_high_risk", Reason: "destructive"}
	if o := svc.Hold(ctx, req); o.Allow || o.Code != approval.CodeTimeout {
		t.Fatalf("held: %+v", o)
	}
	out, err = run(ctx, "approvals", "list", "--dir", dir)
	m := regexp.MustCompile(`(ap_[0-9a-f]+)\s+pending\s+spiffe://example.org/agent/pay-bot\s+payments.send_payment`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err = run(ctx, "approvals", "approve", m[1], "--note", "INV-42", "--dir", dir)
	if err != nil || !strings.Contains(out, "approved") || !strings.Contains(out, "spiffe://example.org/admin/admin (INV-42)") {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := run(ctx, "approvals", "deny", m[1], "--dir", dir); err == nil || !strings.Contains(err.Error(), "already approved") {
		t.Fatalf("decided twice: %v", err)
	}
	if o := svc.Hold(ctx, req); !o.Allow {
		t.Fatalf("the approved call: %+v", o)
	}
	out, err = run(ctx, "approvals", "show", m[1], "--dir", dir)
	if err != nil || !strings.Contains(out, "approval "+m[1]+": used") {
		t.Fatalf("%v\n%s", err, out)
	}
}
