package mcptest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// BridgeKind names an npm bridge that serves a stdio MCP server over
// streamable HTTP.
type BridgeKind string

const (
	// Supergateway is supergateway in stateful stdio → streamable HTTP mode:
	// one child per MCP session (its stateless mode starts a child per
	// request).
	Supergateway BridgeKind = "supergateway"
	// MCPProxy is mcp-proxy with its defaults, streamable HTTP only: one
	// child started with the proxy, shared by the sessions.
	MCPProxy BridgeKind = "mcp-proxy"
)

// Bridge is a running bridge process in front of a stdio MCP server.
type Bridge struct {
	// URL is the streamable HTTP MCP endpoint.
	URL string

	cmd       *exec.Cmd
	out       *tailBuffer
	done      chan struct{}
	waitErr   error
	closeOnce sync.Once
	closeErr  error
}

// startTimeout bounds how long a bridge may take to answer its health check.
const startTimeout = 30 * time.Second

// StartBridge starts kind in front of upstream (a stdio server, e.g. from
// Everything) on a free loopback port and waits until it answers. Close
// stops it and, through it, the upstream.
func (m *Modules) StartBridge(ctx context.Context, kind BridgeKind, upstream Command) (*Bridge, error) {
	var lastErr error
	for range 3 { // a free port may be taken between probing and binding
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		b, err := m.startBridgeOn(ctx, kind, upstream, port)
		if err == nil {
			return b, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func (m *Modules) startBridgeOn(ctx context.Context, kind BridgeKind, upstream Command, port int) (*Bridge, error) {
	var (
		pkg    string
		args   []string
		health string
	)
	p := strconv.Itoa(port)
	switch kind {
	case Supergateway:
		pkg = PkgSupergate
		health = "/healthz"
		args = []string{
			"--stdio", upstream.ShellLine(),
			"--outputTransport", "streamableHttp",
			"--stateful",
			"--port", p,
			"--streamableHttpPath", "/mcp",
			"--healthEndpoint", health,
			"--logLevel", "none",
		}
	case MCPProxy:
		pkg = PkgMCPProxy
		health = "/ping"
		args = append([]string{
			"--host", "127.0.0.1",
			"--port", p,
			"--server", "stream",
			"--streamEndpoint", "/mcp",
			"--",
			upstream.Path,
		}, upstream.Args...)
	default:
		return nil, fmt.Errorf("unknown bridge %q", kind)
	}
	c, err := m.nodeCommand(pkg, args...)
	if err != nil {
		return nil, err
	}
	c.Env = upstream.Env // both bridges hand their environment to the child
	// Not CommandContext: Close stops the bridge gracefully so that it stops
	// its own children; ctx only bounds the start-up.
	cmd := exec.Command(c.Path, c.Args...)
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	b := &Bridge{
		URL:  "http://127.0.0.1:" + p + "/mcp",
		cmd:  cmd,
		out:  &tailBuffer{max: 16 << 10},
		done: make(chan struct{}),
	}
	cmd.Stdout = b.out
	cmd.Stderr = b.out
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", kind, err)
	}
	go func() {
		b.waitErr = cmd.Wait()
		close(b.done)
	}()
	if err := b.waitReady(ctx, "http://127.0.0.1:"+p+health); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("%s on port %d: %w; output: %s", kind, port, err, b.out.String())
	}
	return b, nil
}

func (b *Bridge) waitReady(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("health request: %w", err)
		}
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-b.done:
			return fmt.Errorf("exited before it was ready: %v", b.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// PID is the bridge's process (not its upstream's).
func (b *Bridge) PID() int { return b.cmd.Process.Pid }

// Output is the tail of the bridge's stdout and stderr.
func (b *Bridge) Output() string { return b.out.String() }

// Close stops the bridge: SIGTERM to its process group (the bridge then stops
// the stdio servers it started), SIGKILL after five seconds.
func (b *Bridge) Close() error {
	b.closeOnce.Do(func() {
		select {
		case <-b.done:
			return
		default:
		}
		b.closeErr = stopGroup(b.cmd, b.done, 5*time.Second)
	})
	return b.closeErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("finding a free port: not a TCP address")
	}
	return addr.Port, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
