package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/internal/mcptest"
	"github.com/warden-run/warden/sandbox"
)

// TestMain lets the test binary stand in for the harness as the children
// it re-executes (the pass-through, and a Warden deployment).
func TestMain(m *testing.M) {
	sandbox.MaybeInit()
	if len(os.Args) > 1 && (os.Args[1] == "-serve-passthrough" || os.Args[1] == "-serve-warden") {
		if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestHarnessSmoke runs the harness for a handful of calls against every
// target, Warden included (started by the harness itself).
func TestHarnessSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node processes")
	}
	if _, err := mcptest.Find(t.Context(), "."); errors.Is(err, mcptest.ErrNotInstalled) {
		t.Skipf("skipping: %v", err)
	}
	// run looks for testdata/npm from the working directory, as `go run` does.
	var out strings.Builder
	err := run(t.Context(), []string{"-calls", "20", "-warmup", "5", "-concurrency", "1,3",
		"-targets", "direct,passthrough-stdio,passthrough-http,passthrough-http-json,supergateway,mcp-proxy,warden"}, &out, io.Discard)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{"direct", "go-sdk pass-through", "supergateway 4.0.0", "mcp-proxy 6.7.19",
		"warden (audit async)", "checks (over the pass-through", "added / ", "fsync p50"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "error:") {
		t.Errorf("a target failed:\n%s", got)
	}
}

func TestParseOptions(t *testing.T) {
	o, _, err := parseOptions(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.calls != 2000 || o.warmup != 200 || len(o.concurrency) != 2 || o.protocol != "2025-11-25" {
		t.Errorf("defaults %+v", o)
	}
	for _, bad := range [][]string{
		{"-calls", "0"},
		{"-concurrency", "1,x"},
		{"-concurrency", "0"},
		{"-targets", "nope"},
		{"-warden-url", "https://x/mcp"},
		{"extra"},
	} {
		if _, _, err := parseOptions(bad, io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCheckObjectSchema(t *testing.T) {
	for _, c := range []struct {
		schema any
		input  bool
		ok     bool
	}{
		{map[string]any{"type": "object"}, true, true},
		{nil, true, false},
		{nil, false, true},
		{map[string]any{"type": "string"}, true, false},
		{[]any{1}, true, false},
		{"x", false, false},
		{map[string]any{"type": "array"}, false, true},
		{func() {}, true, false},
	} {
		if err := checkObjectSchema(c.schema, c.input); (err == nil) != c.ok {
			t.Errorf("checkObjectSchema(%v, %v) = %v", c.schema, c.input, err)
		}
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	if err := addForwardingTool(srv, nil, &mcp.Tool{Name: "bad", InputSchema: map[string]any{"type": "string"}}); err == nil {
		t.Error("bad input schema accepted")
	}
	if err := addForwardingTool(srv, nil, nil); err == nil {
		t.Error("nil tool accepted")
	}
}

// echoServer is an in-process stand-in for an upstream with an echo tool.
func echoServer(name string) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "echo", Version: "1"}, nil)
	type in struct {
		Message string `json:"message"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: name}, func(_ context.Context, _ *mcp.CallToolRequest, a in) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "Echo: " + a.Message}}}, nil, nil
	})
	return srv
}

// TestWardenSlot drives the Warden target against a stand-in gateway: mTLS
// with SVIDs both ways, the grant in the Warden-Grant header, a namespaced
// echo tool.
func TestWardenSlot(t *testing.T) {
	dir := t.TempDir()
	pki := writeSVIDs(t, dir)
	grantFile := filepath.Join(dir, "grant.jws")
	if err := os.WriteFile(grantFile, []byte("header.payload.sig\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return echoServer("everything.echo") }, nil)
	gw := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Warden-Grant") != "header.payload.sig" {
			http.Error(w, "grant missing", http.StatusForbidden)
			return
		}
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || len(r.TLS.PeerCertificates[0].URIs) != 1 ||
			r.TLS.PeerCertificates[0].URIs[0].String() != "spiffe://bench.test/agent/bench" {
			http.Error(w, "not the agent", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	}))
	gw.TLS = &tls.Config{
		Certificates: []tls.Certificate{pki.gateway},
		ClientCAs:    pki.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	gw.StartTLS()
	defer gw.Close()

	env := &benchEnv{protocol: "2025-11-25", client: mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil)}
	wt := wardenTarget{label: "audit async", url: gw.URL + "/mcp", credsDir: dir, grantFile: grantFile, tool: "everything.echo"}
	conn, err := wt.Start(t.Context(), env)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer conn.stop()
	if v := conn.session.InitializeResult().ProtocolVersion; v != "2025-11-25" {
		t.Errorf("negotiated %s", v)
	}
	p, err := measurePhase(t.Context(), conn, 4, 50, 10, "hello")
	if err != nil {
		t.Fatalf("measure: %v", err)
	}
	if p.p50 <= 0 || p.p99 < p.p50 || p.rps <= 0 {
		t.Errorf("phase %+v", p)
	}

	// A server that is not a gateway is refused.
	notGW := httptest.NewUnstartedServer(h)
	notGW.Config.ErrorLog = log.New(io.Discard, "", 0)
	notGW.TLS = &tls.Config{Certificates: []tls.Certificate{pki.notGateway}}
	notGW.StartTLS()
	defer notGW.Close()
	wt.url = notGW.URL + "/mcp"
	if conn, err := wt.Start(t.Context(), env); err == nil {
		_ = conn.stop()
		t.Fatal("connected to a server with an agent SVID")
	} else if !strings.Contains(err.Error(), "is not a gateway") {
		t.Errorf("refused for another reason: %v", err)
	}

	// The wrong echo answer fails the phase instead of being timed.
	wt.url = gw.URL + "/mcp"
	conn2, err := wt.Start(t.Context(), env)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.stop()
	conn2.tool = "everything.nope"
	if _, err := measurePhase(t.Context(), conn2, 2, 5, 0, "x"); err == nil {
		t.Error("calls to a missing tool were measured")
	}
}

type svidPKI struct {
	pool                *x509.CertPool
	gateway, notGateway tls.Certificate
}

// writeSVIDs writes an agent credential directory (svid.key, svid.pem,
// bundle.pem) into dir and returns gateway certificates from the same CA.
func writeSVIDs(t *testing.T, dir string) *svidPKI {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := key()
	caURI, _ := url.Parse("spiffe://bench.test")
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"}, URIs: []*url.URL{caURI},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, id string) ([]byte, *ecdsa.PrivateKey) {
		k := key()
		u, err := url.Parse(id)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), URIs: []*url.URL{u},
			NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	agentDER, agentKey := issue(2, "spiffe://bench.test/agent/bench")
	gwDER, gwKey := issue(3, "spiffe://bench.test/gateway/gw")
	otherDER, otherKey := issue(4, "spiffe://bench.test/agent/other")
	pkcs8, err := x509.MarshalPKCS8PrivateKey(agentKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{
		"svid.key":   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		"svid.pem":   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: agentDER}),
		"bundle.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if !strings.HasPrefix(ca.URIs[0].String(), "spiffe://") {
		t.Fatal("CA without a trust domain")
	}
	return &svidPKI{
		pool:       pool,
		gateway:    tls.Certificate{Certificate: [][]byte{gwDER}, PrivateKey: gwKey},
		notGateway: tls.Certificate{Certificate: [][]byte{otherDER}, PrivateKey: otherKey},
	}
}
