package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/config"
)

// An upstream that changes its tools: the change reaches the agent as
// notifications/tools/list_changed, and the new tool is listed (and
// callable, under the grant) right after; a list longer than one page
// arrives in pages.
func TestListChangedAndPagination(t *testing.T) {
	up := mcp.NewServer(&mcp.Implementation{Name: "dyn", Version: "1"}, &mcp.ServerOptions{PageSize: 100})
	type args struct{}
	for i := 0; i < 250; i++ {
		mcp.AddTool(up, &mcp.Tool{Name: fmt.Sprintf("t%03d", i)}, func(contextT, *mcp.CallToolRequest, args) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil, nil
		})
	}
	e := start(t, []config.Upstream{{Name: "dyn", HTTP: &config.HTTPUpstream{URL: newHTTPServer(t, up)}}}, nil)
	if _, err := e.d.Policy.Apply(ctx, "p.cedar", []byte(`@id("all") permit (principal, action, resource);`), policyMeta()); err != nil {
		t.Fatal(err)
	}
	a := e.agent(t, "a")
	_, tok := e.grantFor(t, a, `[{"tool": "dyn.*"}]`, 50)
	changed := make(chan struct{}, 10)
	cs, err := e.clientWith(t, a, tok, &mcp.ClientOptions{ToolListChangedHandler: func(contextT, *mcp.ToolListChangedRequest) { changed <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(toolNames(t, cs)); n != 250 {
		t.Fatalf("listed %d tools through the gateway, want all 250 (upstream pages of 100)", n)
	}
	mcp.AddTool(up, &mcp.Tool{Name: "late"}, func(contextT, *mcp.CallToolRequest, args) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "late tool"}}}, nil, nil
	})
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("no tools/list_changed reached the agent")
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		if r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "dyn.late", Arguments: map[string]any{}}); err == nil && !r.IsError {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the new tool never became callable")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Raw protocol abuse: each gets a clean answer and nothing reaches the
// upstream that the pipeline did not allow.
func TestMalformedRequests(t *testing.T) {
	var upstreamCalls atomic.Int32
	up := mcp.NewServer(&mcp.Implementation{Name: "count", Version: "1"}, nil)
	type args struct{}
	mcp.AddTool(up, &mcp.Tool{Name: "hit"}, func(contextT, *mcp.CallToolRequest, args) (*mcp.CallToolResult, any, error) {
		upstreamCalls.Add(1)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "hit"}}}, nil, nil
	})
	e := start(t, []config.Upstream{{Name: "count", HTTP: &config.HTTPUpstream{URL: newHTTPServer(t, up)}, Tools: map[string][]string{"hit": {"reads"}}}}, nil)
	a := e.agent(t, "a")
	hc := mtlsClient(e, a)
	post := func(body, session string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, e.url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, body := range []string{
		`{`, `[]`, `null`, `"x"`, `{"jsonrpc":"1.0","id":1,"method":"initialize"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"count.hit","arguments":{}}}`, // before initialize
		`{"jsonrpc":"2.0","id":1,"method":"no/such/method"}`,
		strings.Repeat(`{"a":`, 10000) + strings.Repeat(`}`, 10000),
	} {
		code, resp := post(body, "")
		if code == http.StatusOK && !strings.Contains(resp, "error") {
			t.Errorf("%.40q: status %d, body %.200q", body, code, resp)
		}
	}
	// Inside a session, without a grant: the call is denied, not forwarded.
	_, init := post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`, "")
	_ = init
	if upstreamCalls.Load() != 0 {
		t.Fatalf("%d calls reached the upstream", upstreamCalls.Load())
	}
	cs, err := e.client(t, a, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := decision(t, call(t, cs, "count.hit", `{}`)); got != "grant_missing" {
		t.Fatalf("call without a grant: %q", got)
	}
	if n := toolNames(t, cs); len(n) != 0 {
		t.Fatalf("tools listed without a grant: %v", n)
	}
	if upstreamCalls.Load() != 0 {
		t.Fatalf("%d calls reached the upstream without passing the pipeline", upstreamCalls.Load())
	}
}

// A client that disconnects mid-call cancels the upstream call.
func TestClientDisconnectCancelsTheCall(t *testing.T) {
	url, started, cancelled := waitingUpstream(t)
	e := start(t, []config.Upstream{{Name: "slow", HTTP: &config.HTTPUpstream{URL: url}, Tools: map[string][]string{"wait": {"reads"}}}},
		func(g *config.Gateway) { g.CallTimeout = 20 * time.Second })
	a := e.agent(t, "a")
	_, tok := e.grantFor(t, a, `[{"tool": "slow.*"}]`, 5)
	cs, err := e.client(t, a, tok)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { _, _ = cs.CallTool(cctx, &mcp.CallToolParams{Name: "slow.wait", Arguments: map[string]any{}}) }()
	<-started
	cancel()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream call was not cancelled when the agent gave up")
	}
}

// 1,000 concurrent sessions: all served, and the whole test process
// (gateway, control-plane services and the 1,000 clients) stays under
// 512 MB resident.
func TestThousandSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 sessions: skipped with -short")
	}
	// A loaded CI machine may take seconds to reach the last sessions;
	// this test is about serving them all, not about latency.
	e := start(t, demoUpstreams(t), func(g *config.Gateway) { g.CallTimeout = 30 * time.Second })
	a := e.agent(t, "a")
	_, tok := e.grantFor(t, a, taskScope, 5000)
	const n = 1000
	sessions := make([]*mcp.ClientSession, n)
	var wg sync.WaitGroup
	var failed atomic.Int32
	sem := make(chan struct{}, 32)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			cs, err := e.client(t, a, tok)
			if err != nil {
				if failed.Add(1) < 3 {
					t.Logf("connect: %v", err)
				}
				return
			}
			sessions[i] = cs
			if r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "files.read_file", Arguments: map[string]any{"path": "/finance/ledger.csv"}}); err != nil || r.IsError {
				if failed.Add(1) < 3 {
					t.Logf("call: %v %+v", err, r)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d sessions failed", f, n)
	}
	runtime.GC()
	rss := residentBytes(t)
	t.Logf("1,000 sessions open: process resident set %d MB", rss>>20)
	if raceEnabled {
		t.Log("race detector on: the 512 MB limit is checked in builds without it")
	} else if rss > 512<<20 {
		t.Fatalf("resident set %d MB with 1,000 sessions (clients included); want under 512 MB", rss>>20)
	}
	for _, cs := range sessions {
		cs.Close()
	}
}

func residentBytes(t *testing.T) int64 {
	b, err := readFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if f := strings.Fields(string(line)); len(f) >= 2 && f[0] == "VmRSS:" {
			var kb int64
			fmt.Sscan(f[1], &kb)
			return kb << 10
		}
	}
	t.Skip("no VmRSS")
	return 0
}
