package approval

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/store"
)

var ctx = context.Background()

const (
	agent = "spiffe://example.org/agent/bot"
	admin = "spiffe://example.org/admin/alice"
)

func open(t *testing.T, wait time.Duration) (*Service, *store.DB, *events.Recorder) {
	t.Helper()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rec := &events.Recorder{}
	s, err := Open(ctx, Options{DB: db, Events: rec, Wait: wait})
	if err != nil {
		t.Fatal(err)
	}
	return s, db, rec
}

func req(args string) Request {
	return Request{Agent: agent, Task: "t1", Tool: "payments.send", Args: json.RawMessage(args), Rule: "test", Reason: "testing"}
}

// pendingID waits for the one pending approval and returns its id.
func pendingID(t *testing.T, s *Service) string {
	t.Helper()
	for range 500 {
		as, err := s.List(ctx, Pending, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(as) == 1 {
			return as[0].ID
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no pending approval")
	return ""
}

func TestApproveReleasesTheWaitingCallOnce(t *testing.T) {
	s, _, rec := open(t, 5*time.Second)
	out := make(chan Outcome, 1)
	go func() { out <- s.Hold(ctx, req(`{"to": "acct-1", "amount": 10}`)) }()
	id := pendingID(t, s)
	if _, err := s.Decide(ctx, id, agent, true, ""); err == nil || err.(*Error).Code != CodeForbidden {
		t.Fatalf("an agent decided: %v", err)
	}
	if _, err := s.Decide(ctx, id, "spiffe://example.org/gateway/gw", true, ""); err == nil {
		t.Fatal("a gateway decided")
	}
	a, err := s.Decide(ctx, id, admin, true, "ok, invoice INV-42")
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != Approved || a.DecidedBy != admin {
		t.Fatalf("%+v", a)
	}
	if o := <-out; !o.Allow || o.ID != id {
		t.Fatalf("outcome %+v", o)
	}
	if a, _ := s.Get(ctx, id); a.Status != Used || a.UsedAt == nil {
		t.Fatalf("after use: %+v", a)
	}
	if _, err := s.Decide(ctx, id, admin, false, ""); err == nil || err.(*Error).Code != CodeDecided {
		t.Fatalf("decided twice: %v", err)
	}
	// the same call again needs a new approval: single use
	hctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if o := s.Hold(hctx, req(`{"amount": 10, "to": "acct-1"}`)); o.Allow || o.Code != CodeTimeout || o.ID == id {
		t.Fatalf("second use: %+v", o)
	}
	for _, code := range []string{"approval_requested", "approval_granted", "approval_used"} {
		if len(rec.Find(code)) == 0 {
			t.Errorf("no %s event", code)
		}
	}
}

func TestDenyRefusesTheCall(t *testing.T) {
	s, _, _ := open(t, 5*time.Second)
	out := make(chan Outcome, 1)
	go func() { out <- s.Hold(ctx, req(`{"to": "acct-9"}`)) }()
	id := pendingID(t, s)
	if _, err := s.Decide(ctx, id, admin, false, "not this account"); err != nil {
		t.Fatal(err)
	}
	if o := <-out; o.Allow || o.Code != CodeDenied {
		t.Fatalf("outcome %+v", o)
	}
}

// A call nobody decided on in time is refused, but the request stays open:
// approved later, the identical call goes through at once; any other call
// does not.
func TestApprovalIsBoundToTheExactCall(t *testing.T) {
	s, _, _ := open(t, 100*time.Millisecond)
	o := s.Hold(ctx, req(`{"to": "acct-1", "amount": 10}`))
	if o.Allow || o.Code != CodeTimeout || o.ID == "" {
		t.Fatalf("outcome %+v", o)
	}
	if _, err := s.Decide(ctx, o.ID, admin, true, ""); err != nil {
		t.Fatal(err)
	}
	for _, other := range []Request{
		req(`{"to": "acct-1", "amount": 11}`),
		{Agent: agent, Task: "t2", Tool: "payments.send", Args: json.RawMessage(`{"to": "acct-1", "amount": 10}`)},
		{Agent: "spiffe://example.org/agent/other", Task: "t1", Tool: "payments.send", Args: json.RawMessage(`{"to": "acct-1", "amount": 10}`)},
		{Agent: agent, Task: "t1", Tool: "payments.refund", Args: json.RawMessage(`{"to": "acct-1", "amount": 10}`)},
	} {
		hctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		if got := s.Hold(hctx, other); got.Allow {
			t.Fatalf("approval of one call released another: %+v", other)
		}
		cancel()
	}
	// Nobody decides from here on: a retry that waited would time out.
	if got := s.Hold(ctx, req(` {"amount":10,"to":"acct-1"}`)); !got.Allow || got.ID != o.ID {
		t.Fatalf("the identical call was not released at once: %+v", got)
	}
}

func TestCallHash(t *testing.T) {
	a := CallHash("x.y", json.RawMessage(`{"b": 1, "a": [1, 2.50]}`))
	if b := CallHash("x.y", json.RawMessage(`{"a":[1,2.50],"b":1}`)); a != b {
		t.Fatal("key order changed the hash")
	}
	for _, other := range []string{`{"b": 1, "a": [1, 2.5]}`, `{"b": 1, "a": [2.50, 1]}`, `{"b": "1", "a": [1, 2.50]}`, `not json`} {
		if CallHash("x.y", json.RawMessage(other)) == a {
			t.Fatalf("%s hashes like the original", other)
		}
	}
	if CallHash("x.z", json.RawMessage(`{"b": 1, "a": [1, 2.50]}`)) == a {
		t.Fatal("the tool is not in the hash")
	}
}

// One approval releases one call, even when identical calls wait on it.
func TestConcurrentIdenticalCallsShareOneApproval(t *testing.T) {
	s, _, _ := open(t, 2*time.Second)
	var wg sync.WaitGroup
	outs := make(chan Outcome, 3)
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); outs <- s.Hold(ctx, req(`{"to": "acct-1"}`)) }()
	}
	id := pendingID(t, s)
	if _, err := s.Decide(ctx, id, admin, true, ""); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(outs)
	allowed := 0
	for o := range outs {
		if o.Allow {
			allowed++
		}
	}
	if allowed != 1 {
		t.Fatalf("%d calls released by one approval", allowed)
	}
}

func TestTooManyPendingAndFailClosed(t *testing.T) {
	s, db, _ := open(t, 10*time.Millisecond)
	s.o.MaxPending = 2
	s.Hold(ctx, req(`{"n": 1}`))
	s.Hold(ctx, req(`{"n": 2}`))
	if o := s.Hold(ctx, req(`{"n": 3}`)); o.Code != CodeTooMany {
		t.Fatalf("third: %+v", o)
	}
	db.Close()
	if o := s.Hold(ctx, req(`{"n": 4}`)); o.Allow || o.Code != CodeUnavailable {
		t.Fatalf("with the database gone: %+v", o)
	}
}

func TestRequirementPersistsAndExpires(t *testing.T) {
	s, db, rec := open(t, time.Second)
	if _, ok := s.Required(agent); ok {
		t.Fatal("required from the start")
	}
	if err := s.RequireApproval(ctx, agent, "denied-then-retried", "retried", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	r, ok := s.Required(agent)
	if !ok || r.Rule != "denied-then-retried" {
		t.Fatalf("%+v %v", r, ok)
	}
	s2, err := Open(ctx, Options{DB: db, Events: rec})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s2.Required(agent); !ok {
		t.Fatal("the requirement did not survive a restart")
	}
	if err := s2.ClearRequirement(ctx, agent, admin); err != nil {
		t.Fatal(err)
	}
	if _, ok := s2.Required(agent); ok {
		t.Fatal("still required after clearing")
	}
	s3, _ := Open(ctx, Options{DB: db, Events: rec, Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
	_ = s3.RequireApproval(ctx, agent, "r", "x", time.Now().Add(time.Hour))
	if _, ok := s3.Required(agent); ok {
		t.Fatal("an expired requirement is in force")
	}
	if len(s2.Requirements()) != 0 {
		t.Fatal("requirements listed after clearing")
	}
}

func TestDecideErrors(t *testing.T) {
	s, _, _ := open(t, 10*time.Millisecond)
	var e *Error
	if _, err := s.Decide(ctx, "ap_nope", admin, true, ""); !errors.As(err, &e) || e.Code != CodeUnknown {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := s.Decide(ctx, "x", "not a spiffe id", true, ""); !errors.As(err, &e) || e.Code != CodeForbidden {
		t.Fatalf("bad decider: %v", err)
	}
	if _, err := s.List(ctx, "weird", 0); err == nil {
		t.Fatal("bad status listed")
	}
	o := s.Hold(ctx, req(`{}`))
	s.o.Now = func() time.Time { return time.Now().Add(time.Hour) }
	if _, err := s.Decide(ctx, o.ID, admin, true, ""); !errors.As(err, &e) || e.Code != CodeExpired {
		t.Fatalf("expired: %v", err)
	}
	if as, _ := s.List(ctx, Expired, 0); len(as) != 1 {
		t.Fatalf("expired list: %+v", as)
	}
}
