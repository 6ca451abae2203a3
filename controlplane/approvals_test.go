package controlplane

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/warden-run/warden/approval"
	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/credential"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/internal/setup"
)

// startWithApprovals is start with an approval service behind /v1/approvals.
func startWithApprovals(t *testing.T) (*harness, *approval.Service) {
	t.Helper()
	ctx := context.Background()
	dir := config.Dir(filepath.Join(t.TempDir(), "warden"))
	if _, err := setup.Init(ctx, dir, setup.InitOptions{TrustDomain: "example.org"}); err != nil {
		t.Fatal(err)
	}
	d, err := setup.Open(ctx, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	svc, err := approval.Open(ctx, approval.Options{DB: d.DB, Events: d.Events, Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	roots := []*x509.Certificate{d.Identity.CA().Root()}
	bundle, err := identity.NewBundle(ctx, d.DB, d.Config.TrustDomainID(), roots, d.Identity.JWTKeys())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Identity: d.Identity, Bundle: bundle, Events: d.Events, Grants: d.Grants, Policy: d.Policy, Authz: d.Authz, Approvals: svc})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	h := &harness{url: "https://" + ln.Addr().String(), srv: srv, d: d, roots: roots, td: d.Config.TrustDomainID(), cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- srv.Serve(sctx, ln) }()
	t.Cleanup(h.stop)
	for i := 0; !srv.Ready(); i++ {
		if i > 200 {
			t.Fatal("control plane never became ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cred, err := credential.Load(dir.Admin())
	if err != nil {
		t.Fatal(err)
	}
	if h.admin, err = NewClient(h.url, cred); err != nil {
		t.Fatal(err)
	}
	return h, svc
}

func TestApprovalsOverTheAPI(t *testing.T) {
	h, svc := startWithApprovals(t)
	ctx := context.Background()
	agentCred := h.enrol(t, "pay-bot")
	held := make(chan approval.Outcome, 1)
	go func() {
		held <- svc.Hold(ctx, approval.Request{Agent: agentCred.ID.String(), Task: "t_1", Tool: "payments.send_payment",
			Args: json.RawMessage(`{"to": "acct-supplier", "amount": 420}`), Rule: "tier_high_risk", Reason: "testing"})
	}()
	var list []approval.Approval
	for range 500 {
		var err error
		if list, err = h.admin.Approvals(ctx, "pending", 0); err != nil {
			t.Fatal(err)
		}
		if len(list) == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(list) != 1 || list[0].Tool != "payments.send_payment" || list[0].Status != approval.Pending {
		t.Fatalf("pending: %+v", list)
	}
	id := list[0].ID
	// the agent cannot approve its own call: the route is operators only
	agent, err := NewClient(h.url, agentCred)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.DecideApproval(ctx, id, true, ""); apiCode(err) != string(identity.CodeWrongRole) {
		t.Fatalf("an agent decided: %v", err)
	}
	if _, err := h.admin.DecideApproval(ctx, id, true, ""); err != nil {
		t.Fatal(err)
	}
	if o := <-held; !o.Allow || o.ID != id {
		t.Fatalf("held call: %+v", o)
	}
	a, err := h.admin.Approval(ctx, id)
	if err != nil || a.Status != approval.Used || a.DecidedBy != "spiffe://example.org/admin/admin" {
		t.Fatalf("after use: %+v %v", a, err)
	}
	if _, err := h.admin.DecideApproval(ctx, id, false, ""); apiCode(err) != approval.CodeDecided {
		t.Fatalf("decided twice: %v", err)
	}
	if _, err := h.admin.Approval(ctx, "ap_none"); apiCode(err) != approval.CodeUnknown {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := h.admin.Approvals(ctx, "bogus", 0); apiCode(err) != approval.CodeInvalid {
		t.Fatalf("bad status: %v", err)
	}
	var resp map[string]any
	if err := h.admin.do(ctx, "POST", "/v1/approvals/"+id, map[string]string{"decision": "maybe"}, &resp); apiCode(err) != "invalid_input" {
		t.Fatalf("bad decision: %v", err)
	}
}

func TestApprovalsNotConfigured(t *testing.T) {
	h := start(t)
	if _, err := h.admin.Approvals(context.Background(), "", 0); apiCode(err) != "approvals_not_configured" {
		t.Fatalf("without approvals: %v", err)
	}
}
