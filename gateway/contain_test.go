package gateway_test

import (
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/config"
)

// KillAgentUpstreams kills the agent's own per-session tool-server
// processes and nobody else's; the agent's next call gets a fresh process.
func TestKillAgentUpstreams(t *testing.T) {
	std := stdioUpstream("payments", false)
	std.PerSession = true
	e := start(t, []config.Upstream{{Name: "payments", Stdio: std, Tools: map[string][]string{"get_balance": {"reads"}, "send_payment": {"egress"}}}}, nil)
	if _, err := e.d.Policy.Apply(ctx, "p.cedar", []byte(`@id("all") permit (principal, action, resource);`), policyMeta()); err != nil {
		t.Fatal(err)
	}
	a, b := e.agent(t, "a"), e.agent(t, "b")
	_, tokA := e.grantFor(t, a, `[{"tool": "payments.*"}]`, 50)
	_, tokB := e.grantFor(t, b, `[{"tool": "payments.*"}]`, 50)
	ca, err := e.client(t, a, tokA)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := e.client(t, b, tokB)
	if err != nil {
		t.Fatal(err)
	}
	balance := func(cs *mcp.ClientSession) string {
		return call(t, cs, "payments.get_balance", `{}`).Content[0].(*mcp.TextContent).Text
	}
	for _, cs := range []*mcp.ClientSession{ca, cb} {
		if r := call(t, cs, "payments.send_payment", `{"to": "x", "amount": 1000, "currency": "EUR"}`); r.IsError {
			t.Fatal(r.Content)
		}
	}
	spent := balance(ca)
	if n := e.gw.KillAgentUpstreams(a.rec.ID.String(), "test"); n != 1 {
		t.Fatalf("killed %d processes, want 1", n)
	}
	if got := balance(ca); got == spent {
		t.Fatalf("the agent's process survived: balance %q", got)
	}
	if got := balance(cb); got != spent {
		t.Fatalf("another agent's process was killed: balance %q, want %q", got, spent)
	}
	if n := e.gw.KillAgentUpstreams("spiffe://example.org/agent/nobody", "test"); n != 0 {
		t.Fatalf("killed %d for an agent with no session", n)
	}
}
