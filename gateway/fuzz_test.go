package gateway_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/gateway"
)

// FuzzRequest sends arbitrary bodies, as an authenticated agent whose grant
// does not name the upstream's tool, into a live session: the gateway must
// answer without panicking, and nothing may reach the upstream.
func FuzzRequest(f *testing.F) {
	var hits atomic.Int32
	up := mcp.NewServer(&mcp.Implementation{Name: "count", Version: "1"}, nil)
	type args struct{}
	mcp.AddTool(up, &mcp.Tool{Name: "hit"}, func(contextT, *mcp.CallToolRequest, args) (*mcp.CallToolResult, any, error) {
		hits.Add(1)
		return &mcp.CallToolResult{}, nil, nil
	})
	e := start(f, []config.Upstream{{Name: "count", HTTP: &config.HTTPUpstream{URL: newHTTPServer(f, up)}, Tools: map[string][]string{"hit": {"reads"}}}}, nil)
	a := e.agent(f, "a")
	_, tok := e.grantFor(f, a, `[{"tool": "count.oth*"}]`, 1000)
	cs, err := e.client(f, a, tok)
	if err != nil {
		f.Fatal(err)
	}
	sid := cs.ID()
	h := e.gw.Handler()
	chain := x509Chain(a)
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"count.hit","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"count.hit","arguments":{"x":` + strings.Repeat("[", 500) + strings.Repeat("]", 500) + `}}}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`,
		`[{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"count.hit"}}]`,
		"\xff\xfe{",
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, body string, inSession bool) {
		req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
		req.TLS = &tls.ConnectionState{PeerCertificates: chain}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set(gateway.HeaderGrant, tok)
		if inSession {
			req.Header.Set("Mcp-Session-Id", sid)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		_, _ = io.Copy(io.Discard, w.Result().Body)
		if n := hits.Load(); n != 0 {
			t.Fatalf("%d calls reached the upstream though the grant does not name the tool (body %q)", n, body)
		}
	})
}
