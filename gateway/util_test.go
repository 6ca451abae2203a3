package gateway_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

type contextT = context.Context

func newHTTPServer(t testing.TB, s *mcp.Server) string {
	t.Helper()
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	return srv.URL
}

// waitingUpstream serves one tool, wait, that blocks until its call is
// cancelled (then reported on cancelled) or ten seconds pass; started
// reports each call as it begins.
func waitingUpstream(t testing.TB) (url string, started, cancelled chan struct{}) {
	t.Helper()
	up := mcp.NewServer(&mcp.Implementation{Name: "slow", Version: "1"}, nil)
	started, cancelled = make(chan struct{}, 1), make(chan struct{}, 1)
	type args struct{}
	mcp.AddTool(up, &mcp.Tool{Name: "wait"}, func(c contextT, _ *mcp.CallToolRequest, _ args) (*mcp.CallToolResult, any, error) {
		started <- struct{}{}
		select {
		case <-c.Done():
			cancelled <- struct{}{}
		case <-time.After(10 * time.Second):
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil, nil
	})
	return newHTTPServer(t, up), started, cancelled
}

func mtlsClient(e *env, a *agentCred) *http.Client {
	pool := x509.NewCertPool()
	for _, r := range e.roots {
		pool.AddCert(r)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{a.cert}}}}
}

func readFile(p string) ([]byte, error) { return os.ReadFile(p) }
