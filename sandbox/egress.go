package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/warden-run/warden/sandbox/internal/initproc"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/events"
)

// Resolver resolves names for the egress proxy; *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Dialer opens the proxy's outbound connections; *net.Dialer implements it.
// It is only ever given IP addresses, never names.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Reasons the egress proxy gives for its decisions (events and the
// X-Warden-Reason header of a refusal).
const (
	EgressAllowed        = "egress_allowed"
	EgressIPLiteral      = "egress_ip_literal"
	EgressHostNotAllowed = "egress_host_not_allowed"
	EgressPortNotAllowed = "egress_port_not_allowed"
	EgressPrivateAddress = "egress_private_address"
	EgressResolveFailed  = "egress_resolve_failed"
	EgressSNIMismatch    = "egress_sni_mismatch"
	EgressDialFailed     = "egress_dial_failed"
	EgressBadRequest     = "egress_bad_request"
	EgressNotRecorded    = "egress_not_recorded"
)

// EgressConfig configures an EgressProxy.
type EgressConfig struct {
	Rules    []config.EgressRule
	Resolver Resolver // default net.DefaultResolver
	Dialer   Dialer   // default a net.Dialer with a 10 s timeout
	Sink     events.Sink
	Logger   *slog.Logger
	// RequireRecord refuses a connection whose event cannot be recorded.
	RequireRecord bool
	// Labels go into every event: sandbox id, profile, agent, task, tool.
	Labels Labels
	// MaxConns bounds concurrent connections (default 64).
	MaxConns int
	// HandshakeTimeout bounds reading the request and the TLS ClientHello
	// (default 10 s).
	HandshakeTimeout time.Duration
}

// Labels identify whose sandbox an event is about.
type Labels struct {
	Sandbox string // launch id
	Profile string
	Agent   string // SPIFFE ID
	Task    string
	Tool    string // server.tool or server
}

// EgressProxy is the only way out of a sandbox: an HTTP proxy (CONNECT
// tunnels and plain HTTP requests) that allows only the profile's hosts and
// ports, resolves names itself, refuses IP literals and non-public addresses
// unless listed, connects to exactly the address it checked, checks that a
// TLS ClientHello names the host the tunnel was opened for, and records an
// event per connection.
type EgressProxy struct {
	cfg    EgressConfig
	sem    chan struct{}
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	lns    []net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewEgressProxy checks the rules and returns a proxy ready to Serve.
func NewEgressProxy(cfg EgressConfig) (*EgressProxy, error) {
	for i, r := range cfg.Rules {
		p := config.SandboxProfile{Network: config.NetworkEgress, Egress: []config.EgressRule{r}}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("egress rule %d: %w", i, err)
		}
	}
	if cfg.Sink == nil {
		return nil, errors.New("egress proxy: no event sink")
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Dialer == nil {
		cfg.Dialer = &net.Dialer{Timeout: 10 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 64
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &EgressProxy{cfg: cfg, sem: make(chan struct{}, cfg.MaxConns), ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}, nil
}

// Serve accepts connections on ln until Close.
func (p *EgressProxy) Serve(ln net.Listener) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		ln.Close()
		return net.ErrClosed
	}
	p.lns = append(p.lns, ln)
	p.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			if p.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("egress proxy: accepting: %w", err)
		}
		select {
		case p.sem <- struct{}{}:
		default:
			c.Close() // over the connection bound
			continue
		}
		if !p.track(c) {
			<-p.sem
			c.Close()
			return nil
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer func() { <-p.sem }()
			defer p.untrack(c)
			p.handle(c)
		}()
	}
}

func (p *EgressProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *EgressProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// Close stops the proxy and ends every connection it carries.
func (p *EgressProxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.cancel()
	for _, ln := range p.lns {
		ln.Close()
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// Decision is the proxy's verdict on a destination.
type Decision struct {
	Allowed bool
	Reason  string
	Host    string
	Port    int
	Addrs   []netip.Addr // the checked addresses the proxy will connect to
}

// Check decides whether host:port may be reached, resolving host if it is
// allowed. It never resolves a name that no rule allows.
func (p *EgressProxy) Check(ctx context.Context, host string, port int) Decision {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	d := Decision{Host: host, Port: port}
	if port < 1 || port > 65535 {
		d.Reason = EgressPortNotAllowed
		return d
	}
	ip, isIP := parseIPish(host)
	var rule *config.EgressRule
	for i := range p.cfg.Rules {
		r := &p.cfg.Rules[i]
		if hostMatches(r.Host, host, ip, isIP) {
			if slices.Contains(r.Ports, port) {
				rule = r
				break
			}
			d.Reason = EgressPortNotAllowed
		}
	}
	if rule == nil {
		switch {
		case d.Reason != "":
		case isIP || looksNumeric(host):
			d.Reason = EgressIPLiteral
		default:
			d.Reason = EgressHostNotAllowed
		}
		return d
	}
	var addrs []netip.Addr
	if isIP {
		addrs = []netip.Addr{ip}
	} else {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := p.cfg.Resolver.LookupNetIP(rctx, "ip", host)
		cancel()
		if err != nil || len(res) == 0 {
			d.Reason = EgressResolveFailed
			return d
		}
		addrs = res
	}
	for i, a := range addrs {
		a = a.Unmap()
		addrs[i] = a
		if !rule.AllowPrivate && !publicAddr(a) {
			// Any non-public answer refuses the name: a rebinding attack
			// mixes one in among public ones.
			d.Reason = EgressPrivateAddress
			d.Addrs = addrs
			return d
		}
	}
	d.Allowed, d.Reason, d.Addrs = true, EgressAllowed, addrs
	return d
}

func hostMatches(pattern, host string, ip netip.Addr, isIP bool) bool {
	if pip, err := netip.ParseAddr(pattern); err == nil {
		return isIP && pip.Unmap() == ip.Unmap()
	}
	if isIP {
		return false
	}
	if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
		return strings.HasSuffix(host, "."+suffix)
	}
	return host == pattern
}

// parseIPish parses an IP literal, with or without brackets.
func parseIPish(h string) (netip.Addr, bool) {
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if i := strings.IndexByte(h, '%'); i >= 0 {
		h = h[:i] // zone
	}
	a, err := netip.ParseAddr(h)
	return a.Unmap(), err == nil
}

// looksNumeric catches the IPv4 spellings that netip refuses and some
// resolvers accept ("2130706433", "127.1", "0x7f.0.0.1").
func looksNumeric(h string) bool {
	last := h[strings.LastIndexByte(h, '.')+1:]
	if last == "" {
		return false
	}
	if strings.HasPrefix(last, "0x") {
		return true
	}
	_, err := strconv.ParseUint(last, 10, 64)
	return err == nil
}

// nonPublic lists ranges that are not the public Internet, beyond what
// netip's predicates cover.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 can reach IPv4 private space
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"), // 6to4 embeds IPv4
}

// publicAddr reports whether a is a public unicast address: not loopback,
// private, link-local (169.254.169.254, the cloud metadata service, is
// link-local), multicast, unspecified or otherwise reserved.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() ||
		a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() || a.IsMulticast() ||
		a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

func (p *EgressProxy) handle(c net.Conn) {
	ctx := p.ctx
	_ = c.SetDeadline(time.Now().Add(p.cfg.HandshakeTimeout))
	br := bufio.NewReaderSize(c, 16<<10)
	req, err := http.ReadRequest(br)
	if err != nil {
		p.refuse(ctx, c, Decision{Reason: EgressBadRequest}, "", http.StatusBadRequest)
		return
	}
	if req.Method == http.MethodConnect {
		p.handleConnect(ctx, c, br, req)
		return
	}
	p.handlePlain(ctx, c, req)
}

func (p *EgressProxy) handleConnect(ctx context.Context, c net.Conn, br *bufio.Reader, req *http.Request) {
	host, portStr, err := net.SplitHostPort(req.Host)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil {
		p.refuse(ctx, c, Decision{Host: req.Host, Reason: EgressBadRequest}, "CONNECT", http.StatusBadRequest)
		return
	}
	d := p.Check(ctx, host, port)
	if !d.Allowed {
		p.refuse(ctx, c, d, "CONNECT", http.StatusForbidden)
		return
	}
	up, addr, err := p.dial(ctx, d)
	if err != nil {
		d.Allowed, d.Reason = false, EgressDialFailed
		p.refuse(ctx, c, d, "CONNECT", http.StatusBadGateway)
		return
	}
	defer up.Close()
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	// A TLS client must name, in its ClientHello, the host it asked for: a
	// tunnel to an allowed name must not carry a handshake for another
	// name on the same address (domain fronting).
	var hello []byte
	if first, err := br.Peek(1); err == nil && first[0] == 0x16 {
		sni, raw, ok := readClientHello(br)
		hello = raw
		_, isIP := parseIPish(d.Host)
		if !ok || (!isIP && !strings.EqualFold(strings.TrimSuffix(sni, "."), d.Host)) {
			d.Allowed, d.Reason = false, EgressSNIMismatch
			p.record(ctx, d, "CONNECT", addr, map[string]string{"sni": sni})
			return
		}
	}
	if !p.record(ctx, d, "CONNECT", addr, nil) {
		return
	}
	_ = c.SetDeadline(time.Time{})
	if len(hello) > 0 {
		if _, err := up.Write(hello); err != nil {
			return
		}
	}
	initproc.PipeBoth(up, c, br) // br may hold client bytes read past the hello
}

func (p *EgressProxy) handlePlain(ctx context.Context, c net.Conn, req *http.Request) {
	u := req.URL
	if u == nil || u.Scheme != "http" || u.Host == "" {
		p.refuse(ctx, c, Decision{Reason: EgressBadRequest}, req.Method, http.StatusBadRequest)
		return
	}
	host, port := u.Hostname(), 80
	if ps := u.Port(); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil {
			p.refuse(ctx, c, Decision{Host: host, Reason: EgressBadRequest}, req.Method, http.StatusBadRequest)
			return
		}
		port = n
	}
	d := p.Check(ctx, host, port)
	if !d.Allowed {
		p.refuse(ctx, c, d, req.Method, http.StatusForbidden)
		return
	}
	up, addr, err := p.dial(ctx, d)
	if err != nil {
		d.Allowed, d.Reason = false, EgressDialFailed
		p.refuse(ctx, c, d, req.Method, http.StatusBadGateway)
		return
	}
	defer up.Close()
	if !p.record(ctx, d, req.Method, addr, nil) {
		return
	}
	// One request per connection: the next request may name another host.
	req.RequestURI = ""
	req.Host = u.Host
	for _, h := range []string{"Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate", "Keep-Alive", "Te", "Trailer", "Upgrade"} {
		req.Header.Del(h)
	}
	req.Close = true
	_ = c.SetDeadline(time.Time{})
	if err := req.Write(up); err != nil {
		return
	}
	_, _ = io.Copy(c, up)
}

// dial connects to the first checked address that answers.
func (p *EgressProxy) dial(ctx context.Context, d Decision) (net.Conn, netip.AddrPort, error) {
	var errs []error
	for _, a := range d.Addrs {
		ap := netip.AddrPortFrom(a, uint16(d.Port))
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		up, err := p.cfg.Dialer.DialContext(dctx, "tcp", ap.String())
		cancel()
		if err == nil {
			return up, ap, nil
		}
		errs = append(errs, err)
	}
	return nil, netip.AddrPort{}, fmt.Errorf("connecting to %s:%d: %w", d.Host, d.Port, errors.Join(errs...))
}

func (p *EgressProxy) refuse(ctx context.Context, c net.Conn, d Decision, method string, status int) {
	p.record(ctx, d, method, netip.AddrPort{}, nil)
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nX-Warden-Reason: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status, http.StatusText(status), d.Reason)
}

// record emits the connection's event. It returns false when the event
// could not be recorded and a record is required: the connection is then
// refused.
func (p *EgressProxy) record(ctx context.Context, d Decision, method string, addr netip.AddrPort, extra map[string]string) bool {
	e := newEvent("sandbox.egress", events.ActivityCreate, p.cfg.Labels)
	attrs := e.Warden.Attrs
	attrs["host"] = d.Host
	attrs["port"] = strconv.Itoa(d.Port)
	if method != "" {
		attrs["method"] = method
	}
	if addr.IsValid() {
		attrs["addr"] = addr.String()
	}
	for k, v := range extra {
		attrs[k] = v
	}
	e.Warden.Reason = d.Reason
	e.StatusCode = d.Reason
	if d.Allowed {
		e.ActionID, e.DispositionID, e.StatusID = events.ActionAllowed, events.DispositionAllowed, events.StatusSuccess
		e.Message = fmt.Sprintf("egress to %s:%d allowed", d.Host, d.Port)
	} else {
		e.ActionID, e.DispositionID, e.StatusID = events.ActionDenied, events.DispositionBlocked, events.StatusFailure
		e.SeverityID = events.SeverityMedium
		e.Message = fmt.Sprintf("egress to %s:%d refused: %s", d.Host, d.Port, d.Reason)
	}
	if err := p.cfg.Sink.Emit(ctx, e); err != nil {
		p.cfg.Logger.Error("recording egress event", "err", err, "host", d.Host, "port", d.Port)
		if p.cfg.RequireRecord {
			return false
		}
	}
	return true
}

// readClientHello reads one TLS ClientHello from br and returns its server
// name and the raw bytes consumed (to be replayed upstream). The parsing is
// crypto/tls's own: a server handshake over a connection that records what
// it reads and swallows what it writes, stopped as soon as the hello is
// parsed.
func readClientHello(br *bufio.Reader) (sni string, raw []byte, ok bool) {
	rc := &helloConn{r: br}
	errStop := errors.New("hello read")
	srv := tls.Server(rc, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			sni, ok = h.ServerName, true
			return nil, errStop
		},
	})
	_ = srv.Handshake()
	return sni, rc.buf.Bytes(), ok
}

// helloConn is the minimal net.Conn readClientHello needs.
type helloConn struct {
	r   io.Reader
	buf bytes.Buffer
}

func (c *helloConn) Read(b []byte) (int, error) {
	if c.buf.Len() > 64<<10 {
		return 0, errors.New("ClientHello too large")
	}
	n, err := c.r.Read(b)
	c.buf.Write(b[:n])
	return n, err
}
func (c *helloConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *helloConn) Close() error                     { return nil }
func (c *helloConn) LocalAddr() net.Addr              { return &net.UnixAddr{} }
func (c *helloConn) RemoteAddr() net.Addr             { return &net.UnixAddr{} }
func (c *helloConn) SetDeadline(time.Time) error      { return nil }
func (c *helloConn) SetReadDeadline(time.Time) error  { return nil }
func (c *helloConn) SetWriteDeadline(time.Time) error { return nil }

// newEvent starts a sandbox event with the labels filled in.
func newEvent(op string, activity int, l Labels) events.Event {
	e := events.New(events.ClassAPIActivity, activity, "sandbox")
	e.API = &events.API{Operation: op}
	e.Metadata.Profiles = []string{"security_control"}
	e.Metadata.CorrelationUID = l.Task
	if l.Agent != "" {
		e.Actor = &events.Actor{User: &events.User{UID: l.Agent, Type: "agent"}}
	}
	if l.Sandbox != "" {
		e.Resources = []events.Resource{{UID: l.Sandbox, Type: "sandbox", Name: l.Profile}}
	}
	e.Warden = &events.Warden{Agent: l.Agent, Task: l.Task, Tool: l.Tool, Attrs: map[string]string{"profile": l.Profile}}
	return e
}
