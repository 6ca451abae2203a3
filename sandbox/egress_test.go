package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/events"
)

type tableResolver map[string][]string

func (r tableResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, a := range r[host] {
		out = append(out, netip.MustParseAddr(a))
	}
	if len(out) == 0 {
		return nil, errors.New("no such host")
	}
	return out, nil
}

func TestEgressCheck(t *testing.T) {
	p, err := NewEgressProxy(EgressConfig{
		Sink: &events.Recorder{},
		Rules: []config.EgressRule{
			{Host: "api.example.com", Ports: []int{443}},
			{Host: "*.cdn.example.com", Ports: []int{443}},
			{Host: "internal.example.com", Ports: []int{8080}, AllowPrivate: true},
			{Host: "203.0.113.7", Ports: []int{443}, AllowPrivate: true},
			{Host: "rebind.example.com", Ports: []int{443}},
			{Host: "v6.example.com", Ports: []int{443}},
		},
		Resolver: tableResolver{
			"api.example.com":      {"93.184.216.34"},
			"a.cdn.example.com":    {"93.184.216.35"},
			"internal.example.com": {"10.0.0.5"},
			"rebind.example.com":   {"93.184.216.34", "169.254.169.254"},
			"v6.example.com":       {"::ffff:127.0.0.1"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host string
		port int
		want string
	}{
		{"api.example.com", 443, EgressAllowed},
		{"API.Example.com.", 443, EgressAllowed},
		{"api.example.com", 80, EgressPortNotAllowed},
		{"evil.example.com", 443, EgressHostNotAllowed},
		{"example.com.evil.test", 443, EgressHostNotAllowed},
		{"a.cdn.example.com", 443, EgressAllowed},
		{"cdn.example.com", 443, EgressHostNotAllowed}, // a wildcard needs one more label
		{"internal.example.com", 8080, EgressAllowed},
		{"rebind.example.com", 443, EgressPrivateAddress},
		{"v6.example.com", 443, EgressPrivateAddress}, // IPv4-mapped loopback
		{"169.254.169.254", 80, EgressIPLiteral},
		{"127.0.0.1", 443, EgressIPLiteral},
		{"[::1]", 443, EgressIPLiteral},
		{"2130706433", 443, EgressIPLiteral},
		{"0x7f.0.0.1", 443, EgressIPLiteral},
		{"127.1", 443, EgressIPLiteral},
		{"203.0.113.7", 443, EgressAllowed}, // listed, and allowed private
		{"nowhere.example.com", 443, EgressHostNotAllowed},
	} {
		d := p.Check(context.Background(), tc.host, tc.port)
		if d.Reason != tc.want || d.Allowed != (tc.want == EgressAllowed) {
			t.Errorf("Check(%s, %d) = %v %s, want %s", tc.host, tc.port, d.Allowed, d.Reason, tc.want)
		}
	}
	for a, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true, "10.1.1.1": false, "172.16.0.1": false, "192.168.1.1": false,
		"100.64.0.1": false, "169.254.169.254": false, "fe80::1": false, "fc00::1": false, "::": false,
		"0.0.0.0": false, "224.0.0.1": false, "64:ff9b::a00:1": false, "198.18.0.1": false,
	} {
		if got := publicAddr(netip.MustParseAddr(a)); got != want {
			t.Errorf("publicAddr(%s) = %v", a, got)
		}
	}
}

// TestEgressProxyProtocol drives the proxy over a loopback listener: a
// CONNECT tunnel, a plain HTTP request, a refusal, and a refusal when the
// event cannot be recorded.
func TestEgressProxyProtocol(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go http.Serve(up, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "upstream:"+r.URL.Path) }))
	port := up.Addr().(*net.TCPAddr).Port
	rec := &events.Recorder{}
	start := func(sink events.Sink, requireRecord bool) string {
		p, err := NewEgressProxy(EgressConfig{
			Sink: sink, RequireRecord: requireRecord,
			Rules:    []config.EgressRule{{Host: "up.test", Ports: []int{port}, AllowPrivate: true}},
			Resolver: tableResolver{"up.test": {"127.0.0.1"}},
			Labels:   Labels{Sandbox: "s1", Profile: "p"},
		})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go p.Serve(ln)
		t.Cleanup(func() { p.Close() })
		return ln.Addr().String()
	}
	addr := start(rec, true)
	target := fmt.Sprintf("up.test:%d", port)

	// CONNECT, then HTTP inside the tunnel.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	fmt.Fprintf(c, "GET /tunnel HTTP/1.1\r\nHost: up.test\r\nConnection: close\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	c.Close()
	if string(body) != "upstream:/tunnel" {
		t.Fatalf("tunnel body %q", body)
	}

	// Plain HTTP proxying.
	get := func(proxyAddr, url string) (*http.Response, error) {
		c, err := net.Dial("tcp", proxyAddr)
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", url)
		return http.ReadResponse(bufio.NewReader(c), nil)
	}
	resp, err = get(addr, fmt.Sprintf("http://up.test:%d/plain", port))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("plain GET: %v %v", resp, err)
	}
	resp, err = get(addr, "http://evil.test/")
	if err != nil || resp.StatusCode != 403 || resp.Header.Get("X-Warden-Reason") != EgressHostNotAllowed {
		t.Fatalf("refused GET: %v %v", resp, err)
	}
	if n := len(rec.Find(EgressAllowed)); n != 2 {
		t.Errorf("%d allowed events, want 2 (one per connection)", n)
	}
	if ev := rec.Find(EgressHostNotAllowed); len(ev) != 1 || ev[0].ActionID != events.ActionDenied || ev[0].Warden.Attrs["host"] != "evil.test" {
		t.Errorf("refusal event: %+v", ev)
	}

	// When the record is required and cannot be made, the connection is
	// refused.
	broken := &events.Recorder{Err: errors.New("disk full")}
	addr2 := start(broken, true)
	c2, err := net.Dial("tcp", addr2)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fmt.Fprintf(c2, "GET http://%s/x HTTP/1.1\r\nHost: up.test\r\n\r\n", target)
	_ = c2.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c2)
	if strings.Contains(string(b), "upstream:") {
		t.Fatalf("a connection was carried without its record: %q", b)
	}
}
