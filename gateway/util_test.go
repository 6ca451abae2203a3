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

func mtlsClient(e *env, a *agentCred) *http.Client {
	pool := x509.NewCertPool()
	for _, r := range e.roots {
		pool.AddCert(r)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{a.cert}}}}
}

func readFile(p string) ([]byte, error) { return os.ReadFile(p) }
