package setup

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/approval"
	"github.com/warden-run/warden/audit"
	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/gateway"
	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/internal/demotools"
	"github.com/warden-run/warden/policy"
	"github.com/warden-run/warden/respond"
	"github.com/warden-run/warden/tier"
)

var ttcRuns = flag.Int("ttc.runs", 200, "runs of TestTimeToContain")

const respondPolicy = `
@id("demo")
permit (principal, action == Action::"call", resource)
when { resource.server == "files" || resource.server == "payments" || resource.server == "web" };
`

// respondEnv is a whole deployment at the Advanced tier with detection on
// and a gateway in front of the demo payments and files servers.
type respondEnv struct {
	d      *Deployment
	resp   *Response
	gw     *gateway.Gateway
	url    string
	mu     sync.Mutex
	acts   []respond.ActionResult
	acted  chan respond.ActionResult
	cancel context.CancelFunc
}

func startRespond(t *testing.T, tr tier.Tier) *respondEnv {
	t.Helper()
	dir := config.Dir(filepath.Join(t.TempDir(), "w"))
	if _, err := Init(ctx, dir, InitOptions{TrustDomain: "example.org", Tier: tr}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := config.Load(dir.Config())
	cfg.Gateway.Listen = ln.Addr().String()
	var ups []config.Upstream
	for _, name := range []string{"payments", "files", "web"} {
		s, err := demotools.New(name)
		if name == "web" {
			s, err = webServer(), nil
		}
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
		t.Cleanup(srv.Close)
		ups = append(ups, config.Upstream{Name: name, HTTP: &config.HTTPUpstream{URL: srv.URL},
			Tools: map[string][]string{"read_file": {"reads"}, "list_files": {"reads"}, "send_payment": {"egress", "writes"}, "get_balance": {"reads"},
				"fetch": {"reads", "untrusted_output"}}})
	}
	cfg.Gateway.Upstreams = ups
	if err := cfg.Save(dir.Config()); err != nil {
		t.Fatal(err)
	}
	d, err := Open(ctx, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	for _, load := range []func(context.Context) error{d.Identity.Registry().Load, d.Grants.Load, d.Policy.Load} {
		if err := load(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Policy.Apply(ctx, "test.cedar", []byte(respondPolicy), policy.Meta{By: "test"}); err != nil {
		t.Fatal(err)
	}
	e := &respondEnv{d: d, acted: make(chan respond.ActionResult, 64)}
	e.resp, err = d.EnableResponse(ctx, ResponseOptions{ApprovalWait: 5 * time.Second, OnAction: func(_ respond.Alert, r respond.ActionResult) {
		e.mu.Lock()
		e.acts = append(e.acts, r)
		e.mu.Unlock()
		select {
		case e.acted <- r:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	e.gw, err = d.NewGatewayWith(nil, e.resp.GatewayOptions)
	if err != nil {
		t.Fatal(err)
	}
	e.resp.UseGateway(e.gw)
	sctx, cancel := context.WithCancel(ctx)
	e.gw.Start(sctx)
	done := make(chan struct{})
	go func() { _ = e.gw.Serve(sctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); e.gw.Close(); <-done })
	e.url = "https://" + ln.Addr().String() + "/mcp"
	return e
}

type agentKey struct {
	rec  *identity.Record
	cert tls.Certificate
}

func (e *respondEnv) agent(t *testing.T, name string) *agentKey {
	t.Helper()
	cred, rec, err := e.d.EnrolAgent(ctx, "test", identity.Spec{Name: name, Owner: "ops@example.org", Model: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return &agentKey{rec: rec, cert: cred.TLSCertificate()}
}

func (e *respondEnv) task(t *testing.T, a *agentKey) (*grant.Task, string) {
	t.Helper()
	var sc grant.Scope
	if err := json.Unmarshal([]byte(`[{"tool": "files.read_file"}, {"tool": "payments.send_payment", "args": {"to": {"const": "acct-supplier"}, "amount": {"type": "number", "maximum": 500}}}]`), &sc); err != nil {
		t.Fatal(err)
	}
	task, tok, err := e.d.Grants.Open(ctx, grant.OpenRequest{Grantee: a.rec, Requester: "test", Intent: "pay invoice INV-42", Scope: sc, Budget: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return task, tok
}

func (e *respondEnv) client(t *testing.T, a *agentKey, grantTok string) *mcp.ClientSession {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(e.d.Identity.CA().Root())
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{a.cert}}
	hc := &http.Client{Transport: gateway.GrantTransport(grantTok, &http.Transport{TLSClientConfig: tc})}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: e.url, HTTPClient: hc, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func call(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) string {
	t.Helper()
	code, err := tryCall(cs, tool, args)
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return code
}

// tryCall is call for a call whose answer may not arrive: the denial code
// ("" when allowed), or the error the client saw.
func tryCall(cs *mcp.ClientSession, tool string, args map[string]any) (string, error) {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return "", err
	}
	if !res.IsError {
		return "", nil
	}
	d, ok := res.Meta[gateway.MetaDecision].(map[string]any)
	if !ok {
		return "error-without-decision", nil
	}
	return d["code"].(string), nil
}

func (e *respondEnv) waitAction(t *testing.T, action respond.ActionType) respond.ActionResult {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case r := <-e.acted:
			if r.Action == action {
				return r
			}
		case <-timeout:
			t.Fatalf("no %s action; actions so far: %+v", action, e.actions())
		}
	}
}

func (e *respondEnv) actions() []respond.ActionResult {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.acts)
}

// A low-and-slow attacker, through the real gateway: legitimate calls,
// and now and then the same out-of-bounds payment, spaced out. The third
// refusal completes the built-in denied-then-retried rule: the grant is
// revoked, the attacker's next call is denied, and the finding and each
// action are in the audit log.
func TestLowAndSlowAttackerIsContained(t *testing.T) {
	e := startRespond(t, tier.Advanced)
	a := e.agent(t, "billing-bot")
	task, tok := e.task(t, a)
	cs := e.client(t, a, tok)
	refusals := 0
	for i := 0; refusals < 3; i++ {
		if code := call(t, cs, "files.read_file", map[string]any{"path": "/finance/invoices/INV-42.txt"}); code != "" {
			t.Fatalf("legitimate call %d refused: %s", i, code)
		}
		if i%3 == 2 {
			refusals++
			code, err := tryCall(cs, "payments.send_payment", map[string]any{"to": "acct-supplier", "amount": 5000, "currency": "EUR"})
			if err != nil && refusals == 3 {
				// The third refusal completes the rule, and the containment
				// it sets off may close the session before the refusal's
				// answer has reached the agent.
				t.Logf("the completing refusal's answer was cut off by containment: %v", err)
				break
			}
			if err != nil || code != string(grant.CodeConstraint) {
				t.Fatalf("the out-of-bounds payment: %q, %v", code, err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	rev := e.waitAction(t, respond.ActRevokeGrant)
	// the refusals name the task they were made under: it is revoked
	if rev.Outcome != respond.OutcomeDone || rev.Target != task.ID {
		t.Fatalf("revocation %+v", rev)
	}
	t.Logf("time to contain: %v from the engine taking the completing event to the grant revoked", rev.SinceEvent)
	sess := e.waitAction(t, respond.ActKillSessions)
	if sess.Outcome != respond.OutcomeDone {
		t.Fatalf("kill_sessions %+v", sess)
	}
	// its session is gone; reconnecting with the same grant gets nowhere
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if res, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: "files.read_file", Arguments: map[string]any{"path": "/finance/ledger.csv"}}); err == nil && !res.IsError {
		t.Fatal("the attacker's session survived containment")
	}
	if code := call(t, e.client(t, a, tok), "files.read_file", map[string]any{"path": "/finance/ledger.csv"}); code != string(grant.CodeRevoked) {
		t.Fatalf("the next call after containment: %q, want %s", code, grant.CodeRevoked)
	}
	// the record: the finding and the actions, in the audit log
	var finding, revoked bool
	for _, ev := range auditEvents(t, e.d) {
		switch {
		case ev.ClassUID == events.ClassDetectionFinding && ev.Policy != nil && ev.Policy.UID == "denied-then-retried":
			finding = ev.Warden.Agent == a.rec.ID.String() && ev.Warden.Tool == "payments.send_payment"
		case ev.ClassUID == events.ClassRemediationActivity && ev.Warden.Attrs["action"] == "revoke_grant":
			revoked = ev.StatusID == events.StatusSuccess && ev.Warden.Attrs["target"] == rev.Target
		}
	}
	if !finding || !revoked {
		t.Fatalf("audit log: finding %v, revocation %v", finding, revoked)
	}
	if got, _ := e.d.Grants.Get(ctx, task.ID); got.Status != grant.StatusRevoked {
		t.Fatalf("task %s", got.Status)
	}
}

// A playbook's require_approval holds the agent's next sensitive call for
// a human: released by an operator's approval of that exact call, once.
func TestHeldCallReleasedByOperator(t *testing.T) {
	e := startRespond(t, tier.Advanced)
	a := e.agent(t, "pay-bot")
	_, tok := e.task(t, a)
	cs := e.client(t, a, tok)
	if err := e.resp.Approvals.RequireApproval(ctx, a.rec.ID.String(), "test-rule", "testing", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// reads are not held
	if code := call(t, cs, "files.read_file", map[string]any{"path": "/finance/ledger.csv"}); code != "" {
		t.Fatalf("read: %s", code)
	}
	pay := map[string]any{"to": "acct-supplier", "amount": 420, "currency": "EUR"}
	got := make(chan string, 1)
	go func() { got <- call(t, cs, "payments.send_payment", pay) }()
	var held approval.Approval
	for range 400 {
		as, _ := e.resp.Approvals.List(ctx, approval.Pending, 10)
		if len(as) == 1 {
			held = as[0]
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if held.ID == "" || held.Tool != "payments.send_payment" || held.CallHash != approval.CallHash("payments.send_payment", mustJSON(pay)) {
		t.Fatalf("held: %+v", held)
	}
	if _, err := e.resp.Approvals.Decide(ctx, held.ID, "spiffe://example.org/admin/admin", true, "INV-42"); err != nil {
		t.Fatal(err)
	}
	if code := <-got; code != "" {
		t.Fatalf("approved call: %q", code)
	}
	// single use: the same payment again is held anew (and times out here)
	start := time.Now()
	if code := call(t, cs, "payments.send_payment", pay); code != approval.CodeTimeout {
		t.Fatalf("second payment: %q", code)
	}
	if time.Since(start) < 4*time.Second {
		t.Fatal("the second payment did not wait")
	}
}

// At Optimized, the sound taint flow rule holds a tainted session's call
// whose arguments the grant does not fix until an operator decides, rather
// than deny it; a call the grant pins down is not held.
func TestSoundFlowRuleHoldsForApproval(t *testing.T) {
	e := startRespond(t, tier.Optimized)
	a := e.agent(t, "pay-bot")
	var sc grant.Scope
	if err := json.Unmarshal([]byte(`[{"tool": "web.fetch"}, {"tool": "payments.send_payment", "args": {"amount": {"type": "number", "maximum": 500}, "currency": {"enum": ["EUR"]}}}]`), &sc); err != nil {
		t.Fatal(err)
	}
	_, tok, err := e.d.Grants.Open(ctx, grant.OpenRequest{Grantee: a.rec, Requester: "test", Intent: "pay invoice INV-42", Scope: sc, Budget: 100, Egress: []string{"supplier.example"}})
	if err != nil {
		t.Fatal(err)
	}
	cs := e.client(t, a, tok)
	if code := call(t, cs, "web.fetch", map[string]any{"url": "https://supplier.example/hours"}); code != "" { // taints the session
		t.Fatalf("fetch: %s", code)
	}
	pay := map[string]any{"to": "acct-supplier", "amount": 420, "currency": "EUR"}
	got := make(chan string, 1)
	go func() {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "payments.send_payment", Arguments: pay})
		switch {
		case err != nil:
			got <- err.Error()
		case res.IsError:
			b, _ := json.Marshal(res)
			got <- string(b)
		default:
			got <- ""
		}
	}()
	var held approval.Approval
	for range 400 {
		if as, _ := e.resp.Approvals.List(ctx, approval.Pending, 10); len(as) == 1 {
			held = as[0]
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if held.ID == "" || held.Rule != "taint_sound" {
		t.Fatalf("held: %+v (the call: %q)", held, <-got)
	}
	if _, err := e.resp.Approvals.Decide(ctx, held.ID, "spiffe://example.org/admin/admin", true, "checked the invoice"); err != nil {
		t.Fatal(err)
	}
	if code := <-got; code != "" {
		t.Fatalf("approved payment: %q", code)
	}
}

// webServer is a page fetcher whose output is untrusted, and harmless.
func webServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "web", Version: "1"}, nil)
	type fetchArgs struct {
		URL string `json:"url"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "fetch", Description: "Fetch a page."}, func(context.Context, *mcp.CallToolRequest, fetchArgs) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ACME Supplies: open 9:00 to 17:00, Monday to Friday."}}}, nil, nil
	})
	return s
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

func auditEvents(t *testing.T, d *Deployment) []events.Event {
	t.Helper()
	if _, err := d.Audit.CheckpointNow(ctx); err != nil {
		t.Fatal(err)
	}
	dir := audit.Dir(d.Dir)
	v, err := audit.LocalVerifier(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := audit.OpenReader(dir, v)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []events.Event
	if err := r.Scan(ctx, 0, func(rec audit.Record) error {
		var ev events.Event
		if err := json.Unmarshal(rec.Event, &ev); err != nil {
			return err
		}
		out = append(out, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// Time to contain, measured on a real deployment (SQLite, the audit log at
// the tier's durability, the gateway's pipeline stages): from the moment
// the event that completes a rule's condition is emitted to the moment the
// decision point denies the task, that is the first of (a) the detection
// fence the contained stage checks and (b) the grant service's revocation
// state, both polled as the pipeline would; and, separately, to the
// revocation being durable and effective in the grant state.
//
//	go test -run TestTimeToContain -v ./internal/setup/ -ttc.runs 500
func TestTimeToContain(t *testing.T) {
	runs := *ttcRuns
	if testing.Short() {
		runs = 20
	}
	e := startRespond(t, tier.Advanced)
	a := e.agent(t, "ttc-bot")
	var effective, durable []time.Duration
	for i := range runs {
		task, tok := e.task(t, a)
		revoked := make(chan time.Time, 1)
		e.d.Grants.OnRevoke(func(_ context.Context, rev grant.Revocation) { // hooks stay: each filters by its task
			if slices.Contains(rev.Tasks, task.ID) {
				select {
				case revoked <- time.Now():
				default:
				}
			}
		})
		send := func(tool string) error {
			ev := events.New(events.ClassAPIActivity, events.ActivityCreate, "authz")
			ev.ActionID, ev.StatusID = events.ActionDenied, events.StatusFailure
			ev.Actor = &events.Actor{User: &events.User{UID: a.rec.ID.String(), Type: "agent"}}
			ev.Warden = &events.Warden{Agent: a.rec.ID.String(), Task: task.ID, Tool: tool, Reason: "constraint_violated"}
			return e.d.Events.Emit(ctx, ev)
		}
		// a tool of its own per run: the rule is suppressed per agent and
		// tool once it fired
		tool := fmt.Sprintf("payments.t%d", i)
		for range 2 {
			if err := send(tool); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		errc := make(chan error, 1)
		go func() { errc <- send(tool) }() // the completing event, recorded as the decision point does
		var revokedAt time.Time
		for {
			if _, ok := e.resp.Engine.Contained(a.rec.ID.String(), []string{task.ID}); ok {
				break
			}
			select {
			case revokedAt = <-revoked:
			default:
			}
			if !revokedAt.IsZero() {
				break
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("run %d: not contained", i)
			}
			runtime.Gosched()
		}
		effective = append(effective, time.Since(start))
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if revokedAt.IsZero() {
			select {
			case revokedAt = <-revoked:
			case <-time.After(10 * time.Second):
				t.Fatalf("run %d: not revoked", i)
			}
		}
		durable = append(durable, revokedAt.Sub(start))
		if _, err := e.d.Grants.Check(ctx, grant.Call{Agent: &identity.Caller{ID: a.rec.ID, Record: a.rec, KeyThumbprint: a.rec.KeyThumbprint}, Token: tok,
			Tool: "files.read_file", Args: json.RawMessage(`{}`), MTLS: true}); grant.CodeOf(err) != grant.CodeRevoked {
			t.Fatalf("run %d: the grant still verifies: %v", i, err)
		}
	}
	p := func(ds []time.Duration, q float64) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[min(len(s)-1, int(float64(len(s))*q))]
	}
	t.Logf("%d runs, tier advanced (audit sync): contained at the decision point p50 %v p90 %v p99 %v max %v; revocation durable p50 %v p90 %v p99 %v max %v",
		runs, p(effective, 0.5), p(effective, 0.9), p(effective, 0.99), p(effective, 1), p(durable, 0.5), p(durable, 0.9), p(durable, 0.99), p(durable, 1))
	// The figure against its 10ms target is reported (docs/benchmarks.md),
	// not asserted: a wall-clock bound in a test fails on a busy machine
	// without anything being wrong. What is asserted above is that every
	// run was contained and its grant revoked.
}
