package mcptest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestPickBin(t *testing.T) {
	cases := []struct {
		name, main, bin, want string
		wantErr               bool
	}{
		{name: "a", bin: `"dist/a.js"`, want: "dist/a.js"},
		{name: "@s/srv", bin: `{"other":"o.js","srv":"dist/s.js"}`, want: "dist/s.js"},
		{name: "@s/srv", bin: `{"mcp-srv":"dist/s.js"}`, want: "dist/s.js"},
		{name: "x", bin: `{"p":"p.js","q":"q.js"}`, main: "m.js", want: "m.js"},
		{name: "x", bin: `{"p":"p.js","q":"q.js"}`, wantErr: true},
		{name: "x", main: "m.js", want: "m.js"},
		{name: "x", bin: `null`, main: "m.js", want: "m.js"},
		{name: "x", wantErr: true},
		{name: "x", bin: `""`, wantErr: true},
		{name: "x", bin: `42`, wantErr: true},
	}
	for _, c := range cases {
		got, err := pickBin(c.name, json.RawMessage(c.bin), c.main)
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("pickBin(%q, %s, %q) = %q, %v; want %q, error %v", c.name, c.bin, c.main, got, err, c.want, c.wantErr)
		}
	}
}

func TestShellLine(t *testing.T) {
	c := Command{Path: "/usr/bin/node", Args: []string{"/a b/x.js", "it's", "", "plain-arg_1.2"}}
	want := `/usr/bin/node '/a b/x.js' 'it'\''s' '' plain-arg_1.2`
	if got := c.ShellLine(); got != want {
		t.Fatalf("ShellLine = %s, want %s", got, want)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	c = Command{Path: "printf", Args: []string{"%s|", "a b", "it's", "$HOME", "`x`"}}
	out, err := exec.Command(sh, "-c", c.ShellLine()).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out); got != "a b|it's|$HOME|`x`|" {
		t.Fatalf("shell saw %q", got)
	}
}

func TestFindNotInstalled(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Find(t.Context(), sub)
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Find = %v, want ErrNotInstalled", err)
	}
	if !strings.Contains(err.Error(), "make deps") {
		t.Fatalf("error %q does not name make deps", err)
	}
}

func TestBinRejectsBadNames(t *testing.T) {
	m := &Modules{Dir: t.TempDir(), Node: "node"}
	for _, pkg := range []string{"", "../x", "/abs"} {
		if _, err := m.Bin(pkg); err == nil {
			t.Errorf("Bin(%q) succeeded", pkg)
		}
	}
	if _, err := m.Bin("absent"); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("Bin(absent) = %v, want ErrNotInstalled", err)
	}
}

func TestPinnedVersions(t *testing.T) {
	m := ModulesFor(t)
	for pkg, want := range map[string]string{PkgSupergate: "4.0.0", PkgMCPProxy: "6.7.19"} {
		got, err := m.PackageVersion(pkg)
		if err != nil || got != want {
			t.Errorf("%s version %q, %v; want %s", pkg, got, err, want)
		}
	}
	for _, pkg := range []string{PkgEverything, PkgFilesystem, PkgMemory} {
		if _, err := m.Bin(pkg); err != nil {
			t.Errorf("Bin(%s): %v", pkg, err)
		}
	}
}

// connectStdio starts a stdio server with the Go SDK client.
func connectStdio(t *testing.T, command string, args, env []string) *mcp.ClientSession {
	t.Helper()
	cmd := exec.Command(command, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "mcptest", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connecting to %s %v: %v", command, args, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func callText(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) string {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	if res.IsError {
		t.Fatalf("%s returned an error result: %s", tool, b.String())
	}
	return b.String()
}

func TestStdioServers(t *testing.T) {
	t.Run("everything", func(t *testing.T) {
		cmd, args := EverythingServer(t)
		cs := connectStdio(t, cmd, args, nil)
		if v := cs.InitializeResult().ProtocolVersion; v != "2025-11-25" {
			t.Errorf("negotiated %s, want 2025-11-25", v)
		}
		if got := callText(t, cs, "echo", map[string]any{"message": "hi"}); got != "Echo: hi" {
			t.Errorf("echo = %q", got)
		}
	})
	t.Run("filesystem", func(t *testing.T) {
		root := t.TempDir()
		f := filepath.Join(root, "a.txt")
		if err := os.WriteFile(f, []byte("hello from warden"), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd, args := FilesystemServer(t, root)
		cs := connectStdio(t, cmd, args, nil)
		if got := callText(t, cs, "read_text_file", map[string]any{"path": f}); got != "hello from warden" {
			t.Errorf("read_text_file = %q", got)
		}
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": "/etc/passwd"}})
		if err != nil || !res.IsError {
			t.Errorf("reading outside the root: %v, isError=%v; want an error result", err, res != nil && res.IsError)
		}
	})
	t.Run("memory", func(t *testing.T) {
		cmd, args, env := MemoryServer(t)
		if len(env) != 1 || !strings.HasPrefix(env[0], "MEMORY_FILE_PATH=") {
			t.Fatalf("env = %q", env)
		}
		file := strings.TrimPrefix(env[0], "MEMORY_FILE_PATH=")
		cs := connectStdio(t, cmd, args, env)
		callText(t, cs, "create_entities", map[string]any{"entities": []any{
			map[string]any{"name": "warden", "entityType": "project", "observations": []string{"zero trust"}},
		}})
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("memory file: %v", err)
		}
		if !strings.Contains(string(b), `"warden"`) {
			t.Errorf("memory file %s lacks the entity: %s", file, b)
		}
	})
}

func TestTSClientThroughSupergateway(t *testing.T) {
	cmd, args := EverythingServer(t)
	u := BridgeURL(t, Supergateway, cmd, args, nil)
	res, err := RunTSClient(t, u, "echo", json.RawMessage(`{"message":"from ts"}`), TSClientOptions{})
	if err != nil {
		t.Fatalf("ts client: %v", err)
	}
	if res.ProtocolVersion != "2025-11-25" {
		t.Errorf("protocol %q", res.ProtocolVersion)
	}
	if !slices.Contains(res.ToolNames(), "echo") {
		t.Errorf("tools %v lack echo", res.ToolNames())
	}
	if res.Call == nil || res.Call.IsError || res.Call.Text() != "Echo: from ts" {
		t.Errorf("call = %+v, callError = %+v", res.Call, res.CallError)
	}

	// A tool the server does not have: an answer, not a transport failure.
	res, err = RunTSClient(t, u, "no-such-tool", nil, TSClientOptions{})
	if err != nil {
		t.Fatalf("unknown tool: %v", err)
	}
	if res.CallError == nil && (res.Call == nil || !res.Call.IsError) {
		t.Errorf("unknown tool answered %+v", res.Call)
	}

	// Nothing listening: a transport failure.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String() + "/mcp"
	_ = l.Close()
	res, err = RunTSClient(t, dead, "echo", nil, TSClientOptions{})
	if !errors.Is(err, ErrTSTransport) || res == nil || res.Error == "" {
		t.Errorf("dead endpoint: %v, %+v; want ErrTSTransport", err, res)
	}
}

func TestGoClientThroughMCPProxy(t *testing.T) {
	cmd, args := EverythingServer(t)
	u := BridgeURL(t, MCPProxy, cmd, args, nil)
	client := mcp.NewClient(&mcp.Implementation{Name: "mcptest", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: u, DisableStandaloneSSE: true},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	if got := callText(t, cs, "echo", map[string]any{"message": "via mcp-proxy"}); got != "Echo: via mcp-proxy" {
		t.Errorf("echo = %q", got)
	}
}

// TestTSClientMTLS puts an mTLS, header-checking reverse proxy (standing in
// for Warden's gateway) in front of supergateway and drives it with the
// TypeScript client.
func TestTSClientMTLS(t *testing.T) {
	cmd, args := EverythingServer(t)
	upstream, err := url.Parse(BridgeURL(t, Supergateway, cmd, args, nil))
	if err != nil {
		t.Fatal(err)
	}
	upstream.Path = "" // the proxy keeps the request's /mcp
	pki := newTestPKI(t)
	rp := httputil.NewSingleHostReverseProxy(upstream)
	rp.FlushInterval = -1
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Warden-Grant") != "grant-1" {
			http.Error(w, "no grant", http.StatusForbidden)
			return
		}
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || len(r.TLS.PeerCertificates[0].URIs) != 1 ||
			r.TLS.PeerCertificates[0].URIs[0].String() != "spiffe://test/agent/a" {
			http.Error(w, "wrong peer", http.StatusForbidden)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{pki.server},
		ClientCAs:    pki.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
	srv.StartTLS()
	defer srv.Close()
	endpoint := srv.URL + "/mcp"

	good := TSClientOptions{
		Headers:  map[string]string{"Warden-Grant": "grant-1"},
		CertFile: pki.clientCert, KeyFile: pki.clientKey, CAFile: pki.caFile,
	}
	res, err := RunTSClient(t, endpoint, "echo", json.RawMessage(`{"message":"over mtls"}`), good)
	if err != nil {
		t.Fatalf("mTLS: %v", err)
	}
	if res.Call.Text() != "Echo: over mtls" {
		t.Errorf("call = %+v", res.Call)
	}

	noCert := good
	noCert.CertFile, noCert.KeyFile = "", ""
	if _, err := RunTSClient(t, endpoint, "echo", nil, noCert); !errors.Is(err, ErrTSTransport) {
		t.Errorf("without a client certificate: %v, want ErrTSTransport", err)
	}
	noGrant := good
	noGrant.Headers = nil
	res, err = RunTSClient(t, endpoint, "echo", nil, noGrant)
	if !errors.Is(err, ErrTSTransport) || res.HTTPStatus != http.StatusForbidden {
		t.Errorf("without the grant header: %v (%+v), want a 403 transport failure", err, res)
	}
	if _, err := RunTSClient(t, endpoint, "echo", nil, TSClientOptions{CertFile: pki.clientCert}); err == nil {
		t.Error("CertFile without KeyFile accepted")
	}
}

type testPKI struct {
	pool                          *x509.CertPool
	server                        tls.Certificate
	caFile, clientCert, clientKey string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mcptest CA"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, tmpl *x509.Certificate) ([]byte, *ecdsa.PrivateKey) {
		k := newKey()
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Minute), now.Add(time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	srvDER, srvKey := issue(2, &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	})
	agent, err := url.Parse("spiffe://test/agent/a")
	if err != nil {
		t.Fatal(err)
	}
	cliDER, cliKey := issue(3, &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{agent},
	})
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{
		pool:       pool,
		server:     tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey},
		caFile:     write("bundle.pem", "CERTIFICATE", caDER),
		clientCert: write("svid.pem", "CERTIFICATE", cliDER),
		clientKey:  write("svid.key", "PRIVATE KEY", keyDER),
	}
}
