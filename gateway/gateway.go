package gateway

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/authz"
	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/inspect"
	"github.com/warden-run/warden/policy"
	"github.com/warden-run/warden/tier"
)

// Headers agents send.
const (
	// HeaderGrant carries the task grant.
	HeaderGrant = "Warden-Grant"
	// HeaderDPoP carries a DPoP proof (RFC 9449) when the agent
	// authenticates with a JWT-SVID (Authorization: Bearer) rather than mTLS.
	HeaderDPoP = "DPoP"
	// headerInternal carries, from the HTTP layer to the MCP handlers of the
	// same request, the key of what the HTTP layer verified. Any value an
	// agent sends is removed first.
	headerInternal = "Warden-Internal-Request"
)

// Policy is what the gateway asks organisation policy beyond single calls:
// whether a tool is worth listing to an agent at all.
type Policy interface {
	Precheck(ctx context.Context, req policy.Request) policy.Decision
}

// Options configure a Gateway.
type Options struct {
	Config   config.Gateway
	Identity *identity.Verifier
	Grants   *grant.Service
	Authz    *authz.Point
	Policy   Policy
	Events   events.Sink
	Log      *slog.Logger
	// Certs is the gateway's own TLS certificate (an X.509-SVID of role
	// gateway).
	Certs *identity.CertSource
	// Launch starts stdio upstreams; nil means PlainLauncher.
	Launch Launcher
	// URL is the address agents use, for DPoP's htu (default
	// https://<listen>/mcp).
	URL string
	// Stages, when set, replace the default pipeline (tests; later issues
	// add inspection stages).
	Stages []Stage
	// Inspector, when set, inspects every call's arguments (pipeline stage
	// 4) and result (stage 6); Preset is the deployment's tier, whose flow
	// rule and egress stance apply (an agent of a stricter tier gets its
	// own flow rule).
	Inspector *inspect.Inspector
	Preset    tier.Preset
	// Hold, when set, holds a call for a human (an operator approves or
	// denies it) and returns nil when it was approved: the sound taint
	// flow rule asks it instead of denying. Without it such calls are
	// denied.
	Hold func(c *Call, rule, reason string) *Denial
	// Builtin returns the in-process server of a builtin upstream (the
	// memory server). Calls to it carry the caller's context in
	// _meta[MetaCaller]; its results may name, in _meta[MetaTaint], the
	// untrusted content they carried, which taints the session.
	Builtin func(name string) (*mcp.Server, error)
	// Vet, when set, is asked about every tool an upstream lists, each time
	// it lists them (at start, on list_changed, on a re-list): it returns,
	// by tool name, why a tool must be held back (quarantined). Pinning and
	// the description scanner plug in here. A quarantined tool is not
	// listed and calls to it are refused with the reason.
	Vet func(ctx context.Context, server string, tools []*mcp.Tool) map[string]string
}

// Gateway is the MCP gateway.
type Gateway struct {
	cfg      config.Gateway
	td       spiffeid.TrustDomain
	verify   *identity.Verifier
	grants   *grant.Service
	authz    *authz.Point
	policy   Policy
	sink     events.Sink
	log      *slog.Logger
	certs    *identity.CertSource
	launch   Launcher
	url      string
	audience string
	stages   []Stage
	vet      func(context.Context, string, []*mcp.Tool) map[string]string
	builtin  func(string) (*mcp.Server, error)

	inspector *inspect.Inspector
	preset    tier.Preset
	hold      func(*Call, string, string) *Denial
	volumes   sync.Map // task id -> *inspect.VolumeBudget
	roots     *x509bundle.Bundle

	ups     map[string]*upstream
	order   []string // upstream names, sorted
	agg     *mcp.Server
	per     map[string]*mcp.Server
	catalog atomic.Pointer[map[string]*Tool]
	syncMu  sync.Mutex
	exposed map[*mcp.Server]*exposure // what is registered on each server
	// aggTools is the set of tool names registered on the aggregate
	// server, for the fast path (fastcall.go).
	aggTools atomic.Pointer[map[string]bool]

	handler  http.Handler
	requests sync.Map // internal request key -> *requestAuth
	sessions *sessions
	jwts     *jwtCache
	progress sync.Map // gateway progress token -> progressRoute
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// New builds a gateway. It connects to nothing until Start.
func New(o Options) (*Gateway, error) {
	if o.Identity == nil || o.Grants == nil || o.Authz == nil || o.Policy == nil || o.Events == nil || o.Certs == nil {
		return nil, errors.New("gateway needs identity, grants, the decision point, policy, an event sink and a certificate")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Launch == nil {
		o.Launch = PlainLauncher{}
	}
	if o.URL == "" {
		o.URL = "https://" + o.Config.Listen + "/mcp"
	}
	g := &Gateway{
		cfg: o.Config, td: o.Certs.ID().TrustDomain(), verify: o.Identity, grants: o.Grants, authz: o.Authz, policy: o.Policy,
		sink: o.Events, log: o.Log, certs: o.Certs, launch: o.Launch, url: o.URL, audience: o.Certs.ID().String(),
		ups: map[string]*upstream{}, per: map[string]*mcp.Server{}, exposed: map[*mcp.Server]*exposure{},
		sessions: newSessions(), jwts: newJWTCache(),
	}
	g.roots = x509bundle.FromX509Authorities(g.td, []*x509.Certificate{o.Identity.Root()})
	g.stages, g.vet, g.builtin, g.inspector, g.preset, g.hold = o.Stages, o.Vet, o.Builtin, o.Inspector, o.Preset, o.Hold
	if g.stages == nil {
		g.stages = DefaultStages()
	}
	empty := map[string]*Tool{}
	g.catalog.Store(&empty)
	impl := &mcp.Implementation{Name: "warden-gateway", Title: "Warden gateway", Version: "1"}
	g.agg = g.newServer(impl, "")
	for _, u := range o.Config.Upstreams {
		g.ups[u.Name] = newUpstream(g, u)
		g.order = append(g.order, u.Name)
		if o.Config.PerUpstreamEndpoints {
			g.per[u.Name] = g.newServer(impl, u.Name)
		}
	}
	sort.Strings(g.order)
	mux := http.NewServeMux()
	opts := &mcp.StreamableHTTPOptions{MaxRequestBodyBytes: o.Config.MaxMessageBytes, Logger: quiet(o.Log)}
	mux.Handle("/mcp", mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return g.agg }, opts))
	for name, s := range g.per {
		mux.Handle("/mcp/"+name, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, opts))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	g.handler = g.authenticateHTTP(mux)
	return g, nil
}

func (g *Gateway) newServer(impl *mcp.Implementation, upstream string) *mcp.Server {
	s := mcp.NewServer(impl, &mcp.ServerOptions{
		Instructions: "Tools are served through Warden: every call is checked against your task's grant and the organisation's policy. A refused call returns an error result whose _meta[\"warden.dev/decision\"] says why.",
		HasTools:     true,
		HasResources: true,
		HasPrompts:   true,
		Logger:       quiet(g.log),
	})
	s.AddReceivingMiddleware(g.middleware(upstream))
	return s
}

// Start connects to every upstream (waiting up to ctx for the first
// attempt of each) and keeps them connected until Close.
func (g *Gateway) Start(ctx context.Context) {
	g.ctx, g.cancel = context.WithCancel(context.WithoutCancel(ctx))
	g.grants.OnRevoke(g.onRevoke)
	var firsts []chan struct{}
	for _, name := range g.order {
		u := g.ups[name]
		first := make(chan struct{})
		firsts = append(firsts, first)
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			u.supervise(g.ctx, first)
		}()
	}
	for _, f := range firsts {
		select {
		case <-f:
		case <-ctx.Done():
			return
		}
	}
}

func (g *Gateway) ctxOrBackground() context.Context {
	if g.ctx != nil {
		return g.ctx
	}
	return context.Background()
}

// Revet asks Vet again about every upstream's tools, e.g. after an operator
// approved a changed tool.
func (g *Gateway) Revet() { g.syncCatalog() }

// Close disconnects the upstreams (killing stdio servers) and ends sessions.
func (g *Gateway) Close() {
	if g.cancel != nil {
		g.cancel()
	}
	for _, u := range g.ups {
		u.close()
	}
	g.sessions.closeAll()
	g.wg.Wait()
}

// Handler is the gateway's HTTP handler (behind TLS).
func (g *Gateway) Handler() http.Handler { return g.handler }

// TLSConfig is the gateway's TLS configuration: its own certificate, TLS
// 1.3, client certificates requested and verified per request by the
// handler (so a refusal carries its reason).
func (g *Gateway) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: g.certs.GetCertificate, ClientAuth: tls.RequestClientCert}
}

// Serve serves agents on ln until ctx ends, then shuts down gracefully.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           g.handler,
		TLSConfig:         g.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ConnContext:       withConnState,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("gateway stopped: %w", err)
	case <-ctx.Done():
	}
	g.sessions.closeAll() // ends the streams so that Shutdown need not wait on them
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}

// syncCatalog rebuilds the catalog from the upstreams' tools and registers
// the changes on the MCP servers, which notify sessions (tools/list_changed).
func (g *Gateway) syncCatalog() {
	g.syncMu.Lock()
	defer g.syncMu.Unlock()
	cat := map[string]*Tool{}
	all := &offer{}
	per := map[string]*offer{}
	for _, name := range g.order {
		u := g.ups[name]
		o := &offer{}
		for _, t := range u.vetted(g.ctxOrBackground()) {
			cat[t.ID] = t
			o.tools = append(o.tools, t)
		}
		u.mu.RLock()
		for _, r := range u.resources {
			o.resources = append(o.resources, served[*mcp.Resource]{name, r})
		}
		for _, p := range u.prompts {
			o.prompts = append(o.prompts, served[*mcp.Prompt]{name, p})
		}
		u.mu.RUnlock()
		per[name] = o
		all.tools = append(all.tools, o.tools...)
		all.resources = append(all.resources, o.resources...)
		all.prompts = append(all.prompts, o.prompts...)
	}
	g.catalog.Store(&cat)
	g.expose(g.agg, all, true)
	for name, s := range g.per {
		g.expose(s, per[name], false)
	}
}

// offer is what a server fronts: tools, and resources and prompts with the
// upstream each came from.
type offer struct {
	tools     []*Tool
	resources []served[*mcp.Resource]
	prompts   []served[*mcp.Prompt]
}

type served[T any] struct {
	server string
	item   T
}

// exposure is what is registered on one MCP server, by served name.
type exposure struct {
	tools, resources, prompts map[string]bool
}

// expose makes server s serve exactly what o offers: on the aggregate
// endpoint tools and prompts are named server.name; resources keep their
// URIs (the first upstream to list a URI serves it).
func (g *Gateway) expose(s *mcp.Server, o *offer, aggregate bool) {
	have := g.exposed[s]
	if have == nil {
		have = &exposure{tools: map[string]bool{}, resources: map[string]bool{}, prompts: map[string]bool{}}
	}
	next := &exposure{tools: map[string]bool{}, resources: map[string]bool{}, prompts: map[string]bool{}}
	for _, t := range o.tools {
		n := t.Name
		if aggregate {
			n = t.ID
		}
		mt := *t.Upstream
		mt.Name = n
		id := t.ID
		if err := addTool(s, &mt, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return g.callTool(ctx, req, id)
		}); err != nil {
			g.log.Error("tool not served", "tool", id, "err", err)
			continue
		}
		next.tools[n] = true
	}
	for _, r := range o.resources {
		if next.resources[r.item.URI] {
			g.log.Warn("two upstreams list the same resource; the first serves it", "uri", r.item.URI, "ignored", r.server)
			continue
		}
		server, uri := r.server, r.item.URI
		s.AddResource(r.item, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return g.readResource(ctx, req, server, uri)
		})
		next.resources[uri] = true
	}
	for _, p := range o.prompts {
		n := p.item.Name
		if aggregate {
			n = toolID(p.server, n)
		}
		mp := *p.item
		mp.Name = n
		server, name := p.server, p.item.Name
		s.AddPrompt(&mp, func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return g.getPrompt(ctx, req, server, name)
		})
		next.prompts[n] = true
	}
	if g := gone(have.tools, next.tools); len(g) > 0 {
		s.RemoveTools(g...)
	}
	if g := gone(have.resources, next.resources); len(g) > 0 {
		s.RemoveResources(g...)
	}
	if g := gone(have.prompts, next.prompts); len(g) > 0 {
		s.RemovePrompts(g...)
	}
	g.exposed[s] = next
	if aggregate {
		g.aggTools.Store(&next.tools)
	}
}

// servedOnAggregate reports whether the aggregate endpoint serves a tool
// of this name.
func (g *Gateway) servedOnAggregate(name string) bool {
	m := g.aggTools.Load()
	return m != nil && (*m)[name]
}

// gone lists the names in have that are not in next.
func gone(have, next map[string]bool) []string {
	var out []string
	for n := range have {
		if !next[n] {
			out = append(out, n)
		}
	}
	return out
}

// addTool registers a tool, turning the SDK's panic on a malformed tool
// (which checkUpstreamTool should have refused) into an error.
func addTool(s *mcp.Server, t *mcp.Tool, h mcp.ToolHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("refused by the MCP server: %v", r)
		}
	}()
	s.AddTool(t, h)
	return nil
}

// tool returns the catalog entry of a tool id.
func (g *Gateway) tool(id string) (*Tool, bool) {
	t, ok := (*g.catalog.Load())[id]
	return t, ok
}

// Tools returns the catalog, sorted by id.
func (g *Gateway) Tools() []*Tool {
	cat := *g.catalog.Load()
	out := make([]*Tool, 0, len(cat))
	for _, t := range cat {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *Tool) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

// Labels returns the risk labels of a tool the gateway serves, for the
// grant service's mint-time check.
func (g *Gateway) Labels(id string) ([]string, bool) {
	t, ok := g.tool(id)
	if !ok {
		return nil, false
	}
	return t.Labels, true
}

// quiet passes on the MCP SDK's warnings and errors only: its per-session
// information would drown the gateway's own log.
func quiet(l *slog.Logger) *slog.Logger { return slog.New(minLevel{l.Handler(), slog.LevelWarn}) }

type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}
func (h minLevel) WithGroup(n string) slog.Handler { return minLevel{h.Handler.WithGroup(n), h.min} }

func randomKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Audience is the audience a JWT-SVID must carry to authenticate to this
// gateway: its SPIFFE ID.
func (g *Gateway) Audience() string { return g.audience }
