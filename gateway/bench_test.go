package gateway_test

import (
	"encoding/json"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/config"
)

// BenchmarkCall is one tool call through the whole pipeline (mTLS, grant,
// policy, inspection both ways, audit) to an in-process HTTP upstream, as
// one agent session sees it. Its profile is where the gateway's per-call
// cost shows: go test -run '^$' -bench Call -benchmem -cpuprofile cpu.out ./gateway
func BenchmarkCall(b *testing.B) {
	ups := []config.Upstream{{Name: "files", HTTP: &config.HTTPUpstream{URL: httpUpstream(b, "files")},
		Tools: map[string][]string{"read_file": {"reads"}}}}
	e := start(b, ups, nil)
	a := e.agent(b, "a")
	_, tok := e.grantFor(b, a, `[{"tool": "files.read_file", "args": {"path": {"path_within": ["/finance"]}}}]`, 1000000)
	cs, err := e.client(b, a, tok)
	if err != nil {
		b.Fatal(err)
	}
	p := &mcp.CallToolParams{Name: "files.read_file", Arguments: json.RawMessage(`{"path": "/finance/invoices/INV-42.txt"}`)}
	b.ReportAllocs()
	for b.Loop() {
		r, err := cs.CallTool(ctx, p)
		if err != nil || r.IsError {
			b.Fatalf("%v %+v", err, r)
		}
	}
}
