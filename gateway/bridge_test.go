package gateway_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/internal/bridge"
)

// An MCP client that only speaks stdio reaches the gateway through the
// bridge (warden mcp connect), with the grant read from a file for every
// message: replacing the file switches the agent to its next task.
func TestStdioBridge(t *testing.T) {
	e := start(t, demoUpstreams(t), nil)
	a := e.agent(t, "a")
	_, tok := e.grantFor(t, a, taskScope, 20)
	grantFile := filepath.Join(t.TempDir(), "grant.jwt")
	os.WriteFile(grantFile, []byte(tok+"\n"), 0o600)

	pool := x509.NewCertPool()
	pool.AddCert(e.roots[0])
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{a.cert}}}}
	clientOut, bridgeIn := io.Pipe()
	bridgeOut, clientIn := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- bridge.Run(ctx, clientOut, clientIn, bridge.Options{URL: e.url, Client: hc, Grant: func() (string, error) {
			b, err := os.ReadFile(grantFile)
			return strings.TrimSpace(string(b)), err
		}})
		clientIn.Close()
	}()
	c := mcp.NewClient(&mcp.Implementation{Name: "desktop", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.IOTransport{Reader: bridgeOut, Writer: bridgeIn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if names := toolNames(t, cs); len(names) != 3 {
		t.Fatalf("tools through the bridge: %v", names)
	}
	if r := call(t, cs, "files.read_file", `{"path": "/finance/ledger.csv"}`); r.IsError {
		t.Fatalf("call through the bridge: %v", r.Content)
	}
	if got := decision(t, call(t, cs, "files.read_file", `{"path": "/etc/passwd"}`)); got != "constraint_violated" {
		t.Fatalf("the bridge let a refused call through: %q", got)
	}
	// A new task: the bridge picks up the new grant for the next message.
	_, tok2 := e.grantFor(t, a, `[{"tool": "email.list_inbox"}]`, 5)
	os.WriteFile(grantFile, []byte(tok2), 0o600)
	if got := decision(t, call(t, cs, "files.read_file", `{"path": "/finance/ledger.csv"}`)); got != "tool_not_granted" {
		t.Fatalf("old task's access after the grant changed: %q", got)
	}
	if r := call(t, cs, "email.list_inbox", `{}`); r.IsError {
		t.Fatalf("new task's tool: %v", r.Content)
	}
	cs.Close()
	bridgeIn.Close()
	if err := <-done; err != nil {
		t.Fatalf("bridge: %v", err)
	}
}
