package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"time"
)

// Gateway configures the MCP gateway: where agents reach it and which
// upstream MCP servers it fronts.
type Gateway struct {
	// Listen is the gateway's HTTPS address (streamable HTTP, mTLS or
	// JWT-SVID with DPoP). Loopback by default.
	Listen string `yaml:"listen,omitempty"`
	// MaxMessageBytes bounds one JSON-RPC message from an agent.
	MaxMessageBytes int64 `yaml:"max_message_bytes,omitempty"`
	// CallTimeout bounds one upstream call unless the upstream sets its own.
	CallTimeout time.Duration `yaml:"call_timeout,omitempty"`
	// PerUpstreamEndpoints also serves each upstream alone at /mcp/<name>,
	// with its tools under their own names.
	PerUpstreamEndpoints bool `yaml:"per_upstream_endpoints,omitempty"`
	// Upstreams are the MCP servers agents reach through the gateway.
	Upstreams []Upstream `yaml:"upstreams,omitempty"`
}

// Upstream is one MCP server behind the gateway. Exactly one of Stdio,
// HTTP, SSE and Builtin is set.
type Upstream struct {
	// Name is the server part of its tools' ids (server.tool).
	Name  string         `yaml:"name"`
	Stdio *StdioUpstream `yaml:"stdio,omitempty"`
	HTTP  *HTTPUpstream  `yaml:"http,omitempty"`
	SSE   *HTTPUpstream  `yaml:"sse,omitempty"`
	// Builtin names a server Warden runs in process: "memory" (Warden's
	// provenance-signed memory).
	Builtin string `yaml:"builtin,omitempty"`
	// Guard names a check Warden applies to a third-party server's
	// answers: "memory" for a knowledge-graph memory server such as
	// @modelcontextprotocol/server-memory (writes recorded with their
	// provenance; what is read back but was never written through Warden
	// is withheld).
	Guard string `yaml:"guard,omitempty"`
	// Tools sets the risk labels of each tool by name: reads, writes,
	// egress, destructive, untrusted_output. A tool not listed here, or
	// listed with none, carries all five; annotations the server declares
	// (destructiveHint, openWorldHint) may add labels, never remove them.
	Tools map[string][]string `yaml:"tools,omitempty"`
	// CallTimeout overrides the gateway's for this upstream.
	CallTimeout time.Duration `yaml:"call_timeout,omitempty"`
}

// StdioUpstream is a server the gateway launches and supervises. The agent
// never launches it.
type StdioUpstream struct {
	Command string            `yaml:"command"`
	Args    []string          `yaml:"args,omitempty"`
	Env     map[string]string `yaml:"env,omitempty"`
	Dir     string            `yaml:"dir,omitempty"`
	// PerSession starts one process per agent session instead of sharing
	// one across sessions (for servers that keep per-client state).
	PerSession bool `yaml:"per_session,omitempty"`
	// Sandbox names the sandbox profile it runs in.
	Sandbox string `yaml:"sandbox,omitempty"`
}

// HTTPUpstream is a server reached over streamable HTTP or legacy SSE.
type HTTPUpstream struct {
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers,omitempty"`
}

// Gateway defaults.
const (
	DefaultGatewayListen   = "127.0.0.1:8444"
	DefaultMaxMessageBytes = 4 << 20
	DefaultCallTimeout     = 60 * time.Second
)

var (
	upstreamNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	riskLabels     = map[string]bool{"reads": true, "writes": true, "egress": true, "destructive": true, "untrusted_output": true}
)

// memoryLabels are the risk labels of the builtin memory server's tools
// unless the operator sets others. Its reads are not labelled
// untrusted_output: the server itself says which entries it served were
// written by untrusted sessions, and only those taint.
var memoryLabels = map[string][]string{
	"read_graph": {"reads"}, "search_nodes": {"reads"}, "open_nodes": {"reads"},
	"create_entities": {"writes"}, "create_relations": {"writes"}, "add_observations": {"writes"},
	"delete_entities": {"writes", "destructive"}, "delete_observations": {"writes", "destructive"}, "delete_relations": {"writes", "destructive"},
}

func (g *Gateway) applyDefaults() {
	for i := range g.Upstreams {
		u := &g.Upstreams[i]
		if u.Builtin == "memory" && u.Tools == nil {
			u.Tools = map[string][]string{}
			for t, l := range memoryLabels {
				u.Tools[t] = append([]string(nil), l...)
			}
		}
	}
	if g.Listen == "" {
		g.Listen = DefaultGatewayListen
	}
	if g.MaxMessageBytes == 0 {
		g.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if g.CallTimeout == 0 {
		g.CallTimeout = DefaultCallTimeout
	}
}

func (g Gateway) validate(sb Sandbox) error {
	var errs []error
	if _, _, err := net.SplitHostPort(g.Listen); err != nil {
		errs = append(errs, fmt.Errorf("gateway.listen %q: %w", g.Listen, err))
	}
	if g.MaxMessageBytes < 1024 || g.MaxMessageBytes > 256<<20 {
		errs = append(errs, fmt.Errorf("gateway.max_message_bytes %d: want 1 KiB to 256 MiB", g.MaxMessageBytes))
	}
	if g.CallTimeout <= 0 {
		errs = append(errs, fmt.Errorf("gateway.call_timeout must be positive"))
	}
	seen := map[string]bool{}
	for i, u := range g.Upstreams {
		where := fmt.Sprintf("gateway.upstreams[%d] (%s)", i, u.Name)
		if !upstreamNameRe.MatchString(u.Name) {
			errs = append(errs, fmt.Errorf("%s: name must be lowercase letters, digits, '-' or '_' (it becomes the server part of tool ids)", where))
		}
		if seen[u.Name] {
			errs = append(errs, fmt.Errorf("%s: duplicate name", where))
		}
		seen[u.Name] = true
		n := 0
		for _, set := range []bool{u.Stdio != nil, u.HTTP != nil, u.SSE != nil, u.Builtin != ""} {
			if set {
				n++
			}
		}
		if n != 1 {
			errs = append(errs, fmt.Errorf("%s: set exactly one of stdio, http, sse and builtin", where))
			continue
		}
		switch {
		case u.Stdio != nil:
			if u.Stdio.Command == "" {
				errs = append(errs, fmt.Errorf("%s: stdio.command is required", where))
			}
			if u.Stdio.Sandbox != "" {
				if _, ok := sb.Profile(u.Stdio.Sandbox); !ok {
					errs = append(errs, fmt.Errorf("%s: sandbox profile %q is not defined", where, u.Stdio.Sandbox))
				}
			}
		case u.HTTP != nil:
			errs = append(errs, checkUpstreamURL(where+" http.url", u.HTTP.URL))
		case u.SSE != nil:
			errs = append(errs, checkUpstreamURL(where+" sse.url", u.SSE.URL))
		case u.Builtin != "memory":
			errs = append(errs, fmt.Errorf("%s: unknown builtin %q (have: memory)", where, u.Builtin))
		}
		if u.Guard != "" && u.Guard != "memory" {
			errs = append(errs, fmt.Errorf("%s: unknown guard %q (have: memory)", where, u.Guard))
		}
		if u.Guard != "" && u.Builtin != "" {
			errs = append(errs, fmt.Errorf("%s: a builtin server needs no guard", where))
		}
		if u.CallTimeout < 0 {
			errs = append(errs, fmt.Errorf("%s: call_timeout must be positive", where))
		}
		names := make([]string, 0, len(u.Tools))
		for t := range u.Tools {
			names = append(names, t)
		}
		sort.Strings(names)
		for _, t := range names {
			for _, l := range u.Tools[t] {
				if !riskLabels[l] {
					errs = append(errs, fmt.Errorf("%s: tool %s: unknown label %q (want reads, writes, egress, destructive, untrusted_output)", where, t, l))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func checkUpstreamURL(where, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s %q: want an http(s) URL", where, s)
	}
	return nil
}

// Upstream returns the upstream with the given name.
func (g Gateway) Upstream(name string) (Upstream, bool) {
	for _, u := range g.Upstreams {
		if u.Name == name {
			return u, true
		}
	}
	return Upstream{}, false
}

// Labels returns the operator's labels for tool of upstream u and whether
// the operator set any. The builtin memory server's tools have their
// default labels when the operator set none for the upstream, also for an
// Upstream built in code rather than loaded from warden.yaml.
func (u Upstream) Labels(tool string) ([]string, bool) {
	if u.Builtin == "memory" && u.Tools == nil {
		l, ok := memoryLabels[tool]
		return slices.Clone(l), ok
	}
	l, ok := u.Tools[tool]
	return l, ok && len(l) > 0
}
