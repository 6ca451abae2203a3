package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/config"
)

// Proc is a running stdio upstream: its standard streams, and its whole
// process tree as one thing to kill.
type Proc interface {
	Stdin() io.WriteCloser
	Stdout() io.ReadCloser
	// Done is closed when the process has ended.
	Done() <-chan struct{}
	// Kill ends the whole process tree.
	Kill(reason string)
	// ExitReason says how it ended (after Done).
	ExitReason() string
}

// Launcher starts stdio upstreams. The gateway launches them, never the
// agent. PlainLauncher runs them as child processes; the sandbox package
// provides one that confines them (see internal/setup).
type Launcher interface {
	Start(ctx context.Context, upstream string, s *config.StdioUpstream, stderr io.Writer) (Proc, error)
}

// PlainLauncher starts stdio upstreams as child processes in their own
// process group, with an explicit environment: PATH and what the
// upstream's configuration sets, nothing else of Warden's.
type PlainLauncher struct{}

// Start implements Launcher.
func (PlainLauncher) Start(_ context.Context, _ string, s *config.StdioUpstream, stderr io.Writer) (Proc, error) {
	cmd := exec.Command(s.Command, s.Args...)
	cmd.Dir = s.Dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range s.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &plainProc{cmd: cmd, stdin: stdin, stdout: stdout, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.exit = "exited"
		if cmd.ProcessState != nil {
			p.exit = cmd.ProcessState.String()
		} else if err != nil {
			p.exit = err.Error()
		}
		close(p.done)
	}()
	return p, nil
}

type plainProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	done   chan struct{}
	exit   string
}

func (p *plainProc) Stdin() io.WriteCloser { return p.stdin }
func (p *plainProc) Stdout() io.ReadCloser { return p.stdout }
func (p *plainProc) Done() <-chan struct{} { return p.done }
func (p *plainProc) ExitReason() string    { <-p.done; return p.exit }
func (p *plainProc) Kill(string)           { _ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }

// maxUpstreamTools bounds how many tools one upstream may list.
const maxUpstreamTools = 4096

// conn is one live client session with an upstream.
type conn struct {
	cs   *mcp.ClientSession
	proc Proc // stdio only
	done chan struct{}
}

// close ends the session and, for a stdio upstream, kills its whole
// process tree and waits (briefly) until it is gone, so that its exit is
// recorded before the gateway's record closes.
func (c *conn) close() {
	_ = c.cs.Close()
	if c.proc != nil {
		c.proc.Kill("session ended")
		select {
		case <-c.proc.Done():
		case <-time.After(5 * time.Second):
		}
	}
}

// upstream is one configured MCP server: its shared connection (supervised:
// restarted with backoff when it dies) and the tools it lists.
type upstream struct {
	cfg    config.Upstream
	g      *Gateway
	log    *slog.Logger
	client *mcp.Client

	mu        sync.RWMutex
	cur       *conn
	down      error // why there is no connection
	tools     []*Tool
	resources []*mcp.Resource
	prompts   []*mcp.Prompt
}

func newUpstream(g *Gateway, cfg config.Upstream) *upstream {
	u := &upstream{cfg: cfg, g: g, log: g.log.With("upstream", cfg.Name), down: errors.New("not connected yet")}
	u.client = mcp.NewClient(&mcp.Implementation{Name: "warden-gateway", Version: "1"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(ctx context.Context, _ *mcp.ToolListChangedRequest) {
			go u.refresh(context.WithoutCancel(ctx))
		},
		ResourceListChangedHandler: func(ctx context.Context, _ *mcp.ResourceListChangedRequest) {
			go u.refresh(context.WithoutCancel(ctx))
		},
		PromptListChangedHandler: func(ctx context.Context, _ *mcp.PromptListChangedRequest) {
			go u.refresh(context.WithoutCancel(ctx))
		},
		ProgressNotificationHandler: func(ctx context.Context, r *mcp.ProgressNotificationClientRequest) {
			g.forwardProgress(ctx, r.Params)
		},
		LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
			u.log.Debug("upstream log", "level", r.Params.Level, "data", r.Params.Data)
		},
	})
	return u
}

func (u *upstream) timeout() time.Duration {
	if u.cfg.CallTimeout > 0 {
		return u.cfg.CallTimeout
	}
	return u.g.cfg.CallTimeout
}

// connect opens a new client session with the upstream.
func (u *upstream) connect(ctx context.Context) (*conn, error) {
	var t mcp.Transport
	var proc Proc
	switch {
	case u.cfg.Stdio != nil:
		var err error
		if proc, err = u.g.launch.Start(ctx, u.cfg.Name, u.cfg.Stdio, &logWriter{log: u.log}); err != nil {
			return nil, fmt.Errorf("launching %s: %w", u.cfg.Name, err)
		}
		// Servers' answers (a file's content, a page) may be larger than
		// what agents may send: the SDK's bound for stdio messages.
		t = &stdioTransport{r: proc.Stdout(), w: proc.Stdin(), max: mcp.DefaultMaxLineLength}
	case u.cfg.HTTP != nil:
		t = &mcp.StreamableClientTransport{Endpoint: u.cfg.HTTP.URL, HTTPClient: headerClient(u.cfg.HTTP.Headers), MaxRetries: 1}
	case u.cfg.SSE != nil:
		t = &mcp.SSEClientTransport{Endpoint: u.cfg.SSE.URL, HTTPClient: headerClient(u.cfg.SSE.Headers)}
	case u.cfg.Builtin != "":
		if u.g.builtin == nil {
			return nil, fmt.Errorf("builtin upstream %s is not available in this gateway", u.cfg.Builtin)
		}
		srv, err := u.g.builtin(u.cfg.Builtin)
		if err != nil {
			return nil, fmt.Errorf("starting builtin %s: %w", u.cfg.Builtin, err)
		}
		client, server := mcp.NewInMemoryTransports()
		if _, err := srv.Connect(ctx, server, nil); err != nil {
			return nil, fmt.Errorf("starting builtin %s: %w", u.cfg.Builtin, err)
		}
		t = client
	default:
		return nil, errors.New("upstream has no transport")
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cs, err := u.client.Connect(cctx, t, nil)
	if err == nil && (cs.InitializeResult() == nil || cs.InitializeResult().Capabilities == nil) {
		cs.Close()
		err = errors.New("it did not say what it offers (no capabilities)")
	}
	if err != nil {
		if proc != nil {
			proc.Kill("could not connect")
		}
		return nil, fmt.Errorf("connecting to %s: %w", u.cfg.Name, err)
	}
	c := &conn{cs: cs, proc: proc, done: make(chan struct{})}
	go func() {
		_ = cs.Wait()
		close(c.done)
	}()
	return c, nil
}

// supervise keeps the shared connection up until ctx ends: connect, list
// tools, wait for the connection to end, back off, again.
func (u *upstream) supervise(ctx context.Context, firstDone chan<- struct{}) {
	backoff := 200 * time.Millisecond
	first := true
	for ctx.Err() == nil {
		c, err := u.connect(ctx)
		if err == nil {
			err = u.setConn(ctx, c)
		}
		if first {
			first = false
			close(firstDone)
		}
		if err != nil {
			u.setDown(err)
			u.log.Error("upstream unavailable; retrying", "err", err, "retry_in", backoff)
		} else {
			backoff = 200 * time.Millisecond
			select {
			case <-ctx.Done():
				c.close()
				return
			case <-c.done:
			}
			reason := exitReason(c)
			u.setDown(fmt.Errorf("%s stopped: %s", u.cfg.Name, reason))
			c.close()
			u.log.Error("upstream stopped; restarting", "reason", reason, "retry_in", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func exitReason(c *conn) string {
	if c.proc == nil {
		return "connection closed"
	}
	c.proc.Kill("session ended")
	return c.proc.ExitReason()
}

func (u *upstream) setConn(ctx context.Context, c *conn) error {
	l, err := u.list(ctx, c.cs)
	if err != nil {
		c.close()
		return err
	}
	u.mu.Lock()
	u.cur, u.down = c, nil
	u.tools, u.resources, u.prompts = l.tools, l.resources, l.prompts
	u.mu.Unlock()
	u.g.syncCatalog()
	u.log.Info("upstream connected", "tools", len(l.tools), "resources", len(l.resources), "prompts", len(l.prompts))
	return nil
}

func (u *upstream) setDown(err error) {
	u.mu.Lock()
	u.cur, u.down = nil, err
	u.mu.Unlock()
}

// refresh re-lists the tools after the upstream said they changed.
func (u *upstream) refresh(ctx context.Context) {
	u.mu.RLock()
	c := u.cur
	u.mu.RUnlock()
	if c == nil {
		return
	}
	l, err := u.list(ctx, c.cs)
	if err != nil {
		u.log.Error("re-listing tools failed", "err", err)
		return
	}
	u.mu.Lock()
	u.tools, u.resources, u.prompts = l.tools, l.resources, l.prompts
	u.mu.Unlock()
	u.g.syncCatalog()
}

// listing is what an upstream offers.
type listing struct {
	tools     []*Tool
	resources []*mcp.Resource
	prompts   []*mcp.Prompt
}

// list lists an upstream's tools, resources and prompts.
func (u *upstream) list(ctx context.Context, cs *mcp.ClientSession) (listing, error) {
	var l listing
	var err error
	if l.tools, err = u.listTools(ctx, cs); err != nil {
		return l, err
	}
	caps := cs.InitializeResult().Capabilities
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if caps.Resources != nil {
		for r, err := range cs.Resources(lctx, nil) {
			if err != nil {
				return l, fmt.Errorf("listing resources of %s: %w", u.cfg.Name, err)
			}
			if len(l.resources) >= maxUpstreamTools {
				return l, fmt.Errorf("%s lists more than %d resources", u.cfg.Name, maxUpstreamTools)
			}
			if r.URI == "" || len(r.URI) > 4096 {
				continue
			}
			l.resources = append(l.resources, r)
		}
	}
	if caps.Prompts != nil {
		for p, err := range cs.Prompts(lctx, nil) {
			if err != nil {
				return l, fmt.Errorf("listing prompts of %s: %w", u.cfg.Name, err)
			}
			if len(l.prompts) >= maxUpstreamTools {
				return l, fmt.Errorf("%s lists more than %d prompts", u.cfg.Name, maxUpstreamTools)
			}
			if checkUpstreamTool(&mcp.Tool{Name: p.Name, InputSchema: map[string]any{"type": "object"}}) != nil {
				continue
			}
			l.prompts = append(l.prompts, p)
		}
	}
	return l, nil
}

// listTools lists every tool, page by page, refusing what cannot be served.
func (u *upstream) listTools(ctx context.Context, cs *mcp.ClientSession) ([]*Tool, error) {
	if cs.InitializeResult().Capabilities.Tools == nil {
		return nil, nil
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out []*Tool
	seen := map[string]bool{}
	for t, err := range cs.Tools(lctx, nil) {
		if err != nil {
			return nil, fmt.Errorf("listing tools of %s: %w", u.cfg.Name, err)
		}
		if len(out) >= maxUpstreamTools {
			return nil, fmt.Errorf("%s lists more than %d tools", u.cfg.Name, maxUpstreamTools)
		}
		if err := checkUpstreamTool(t); err != nil {
			u.log.Warn("upstream tool refused", "err", err)
			continue
		}
		if seen[t.Name] {
			u.log.Warn("upstream lists a tool twice; the first is kept", "tool", t.Name)
			continue
		}
		seen[t.Name] = true
		out = append(out, &Tool{ID: toolID(u.cfg.Name, t.Name), Server: u.cfg.Name, Name: t.Name, Labels: labelsFor(u.cfg, t), Upstream: t})
	}
	return out, nil
}

// vetted returns the upstream's tools with the quarantine verdicts of the
// gateway's Vet hook applied (fresh copies: a verdict can change).
func (u *upstream) vetted(ctx context.Context) []*Tool {
	u.mu.RLock()
	tools := slices.Clone(u.tools)
	u.mu.RUnlock()
	if u.g.vet == nil || len(tools) == 0 {
		return tools
	}
	listed := make([]*mcp.Tool, len(tools))
	for i, t := range tools {
		listed[i] = t.Upstream
	}
	verdicts := u.g.vet(ctx, u.cfg.Name, listed)
	out := make([]*Tool, len(tools))
	for i, t := range tools {
		c := *t
		c.Quarantine = verdicts[t.Name]
		out[i] = &c
	}
	return out
}

// sessionFor returns the client session a call of agent session st goes
// through: the shared one, or st's own process for a per-session upstream.
func (u *upstream) sessionFor(ctx context.Context, st *session) (*mcp.ClientSession, error) {
	if u.cfg.Stdio == nil || !u.cfg.Stdio.PerSession {
		return u.session()
	}
	c, err := st.upstreamConn(context.WithoutCancel(ctx), u)
	if err != nil {
		return nil, err
	}
	return c.cs, nil
}

// session returns the live shared client session.
func (u *upstream) session() (*mcp.ClientSession, error) {
	u.mu.RLock()
	defer u.mu.RUnlock()
	if u.cur == nil {
		return nil, u.down
	}
	return u.cur.cs, nil
}

func (u *upstream) close() {
	u.mu.Lock()
	c := u.cur
	u.cur, u.down = nil, errors.New("gateway shut down")
	u.mu.Unlock()
	if c != nil {
		c.close()
	}
}

// headerClient is an HTTP client that adds fixed headers (an upstream's
// credentials) to every request.
func headerClient(h map[string]string) *http.Client {
	if len(h) == 0 {
		return &http.Client{}
	}
	return &http.Client{Transport: headerRoundTripper{h: h, next: http.DefaultTransport}}
}

// GrantTransport returns an http.RoundTripper that presents tok, a task
// grant, in the Warden-Grant header of every request it sends through next
// (none when tok is empty): what an agent's MCP client over streamable HTTP
// adds to its mTLS certificate.
func GrantTransport(tok string, next http.RoundTripper) http.RoundTripper {
	if tok == "" {
		return next
	}
	return headerRoundTripper{h: map[string]string{HeaderGrant: tok}, next: next}
}

type headerRoundTripper struct {
	h    map[string]string
	next http.RoundTripper
}

func (t headerRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.h {
		r.Header.Set(k, v)
	}
	return t.next.RoundTrip(r)
}

// logWriter sends an upstream's stderr to the log, line by line.
type logWriter struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) > 64<<10 {
				w.log.Debug("upstream stderr", "line", string(w.buf))
				w.buf = w.buf[:0]
			}
			return len(p), nil
		}
		w.log.Debug("upstream stderr", "line", string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

var _ io.Writer = (*logWriter)(nil)
