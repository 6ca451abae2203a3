package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/gateway"
)

// recorder notes, per JSON-RPC method an agent posts, the media type of
// the gateway's answers.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen map[string][]string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var method string
	if req.Body != nil && req.Method == http.MethodPost {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		var m struct{ Method string }
		_ = json.Unmarshal(body, &m)
		method = m.Method
	}
	resp, err := r.next.RoundTrip(req)
	if err == nil && method != "" {
		r.mu.Lock()
		r.seen[method] = append(r.seen[method], strings.SplitN(resp.Header.Get("Content-Type"), ";", 2)[0])
		r.mu.Unlock()
	}
	return resp, err
}

func (r *recorder) types(method string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen[method]...)
}

// A plain tools/call is answered by the gateway's HTTP handler itself (one
// application/json body, fastcall.go); a call asking for progress goes
// through the SDK (an event stream). Both run the same pipeline: the same
// result for an allowed call, the same refusal for a denied one.
func TestPlainCallsAreServedWithoutTheSDKHandOffs(t *testing.T) {
	e := start(t, demoUpstreams(t), nil)
	a := e.agent(t, "a")
	_, tok := e.grantFor(t, a, taskScope, 50)
	hc := mtlsClient(e, a)
	rec := &recorder{next: gateway.GrantTransport(tok, hc.Transport), seen: map[string][]string{}}
	hc.Transport = rec
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: e.url, HTTPClient: hc, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	toolNames(t, cs)

	allowed := call(t, cs, "email.list_inbox", `{}`)
	params := &mcp.CallToolParams{Name: "email.list_inbox", Arguments: map[string]any{}}
	params.SetProgressToken("p-1")
	viaSDK, err := cs.CallTool(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	denied := call(t, cs, "payments.get_balance", `{}`)

	if got := rec.types("tools/call"); len(got) != 3 || got[0] != "application/json" || got[1] != "text/event-stream" || got[2] != "application/json" {
		t.Fatalf("tools/call answered as %v, want application/json, text/event-stream (progress asked), application/json", got)
	}
	if allowed.IsError || allText(allowed) == "" || allText(allowed) != allText(viaSDK) {
		t.Fatalf("the same call answered %q by the fast path and %q through the SDK", allText(allowed), allText(viaSDK))
	}
	if !denied.IsError || decision(t, denied) == "" {
		t.Fatalf("a call outside the grant was not refused with a decision: %+v", denied)
	}
}

// notifications/cancelled for a call the fast path serves cancels it.
func TestCancelledNotificationReachesAFastCall(t *testing.T) {
	url, started, cancelled := waitingUpstream(t)
	e := start(t, []config.Upstream{{Name: "slow", HTTP: &config.HTTPUpstream{URL: url}, Tools: map[string][]string{"wait": {"reads"}}}},
		func(g *config.Gateway) { g.CallTimeout = 20 * time.Second })
	a := e.agent(t, "a")
	_, tok := e.grantFor(t, a, `[{"tool": "slow.*"}]`, 5)
	hc := mtlsClient(e, a)
	hc.Transport = gateway.GrantTransport(tok, hc.Transport)
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1"}, &mcp.ClientOptions{}).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: e.url, HTTPClient: hc, MaxRetries: -1}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	toolNames(t, cs)

	post := func(body string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Session-Id", cs.ID())
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		return hc.Do(req)
	}
	answered := make(chan string, 1)
	go func() {
		resp, err := post(`{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"slow.wait","arguments":{}}}`)
		if err != nil {
			answered <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answered <- fmt.Sprintf("%s %s", resp.Header.Get("Content-Type"), b)
	}()
	<-started
	resp, err := post(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"c-1","reason":"changed my mind"}}`)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("notifications/cancelled answered %s, want 202 from the SDK", resp.Status)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream call was not cancelled by notifications/cancelled")
	}
	if got := <-answered; !strings.HasPrefix(got, "application/json ") || !strings.Contains(got, `"id":"c-1"`) {
		t.Fatalf("the cancelled call was answered %q, want a JSON-RPC answer from the fast path", got)
	}
}
