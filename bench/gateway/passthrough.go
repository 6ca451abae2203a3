package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The bare Go-SDK pass-through proxy: the floor a Go MCP gateway cannot go
// below. It is an mcp.Server whose tools are the upstream's, each handler
// forwarding tools/call unchanged to one shared mcp.ClientSession of the
// upstream stdio server. It does nothing else: no authentication, no checks,
// no logging, tools only (no resources, prompts or notifications). The
// harness runs it as a child process of itself (see runPassthroughMode), so
// that, like every other target, it is a separate process from the client.

// passthroughFront is how the pass-through serves its client.
type passthroughFront string

const (
	frontStdio passthroughFront = "stdio"
	frontHTTP  passthroughFront = "http"
	// frontHTTPJSON answers each POST with one application/json body
	// (StreamableHTTPOptions.JSONResponse) instead of an SSE stream.
	frontHTTPJSON passthroughFront = "http-json"
)

// newPassthrough connects to upstream over stdio (pinning protocol) and
// returns a server exposing its tools. The session must be closed by the
// caller.
func newPassthrough(ctx context.Context, upstream *exec.Cmd, protocol string) (*mcp.Server, *mcp.ClientSession, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "warden-bench-passthrough", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: upstream, TerminateDuration: stdioGrace}, &mcp.ClientSessionOptions{ProtocolVersion: protocol})
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to upstream %s: %w", upstream.Path, err)
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "warden-bench-passthrough", Version: "1"}, nil)
	n := 0
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			_ = cs.Close()
			return nil, nil, fmt.Errorf("listing upstream tools: %w", err)
		}
		if err := addForwardingTool(srv, cs, tool); err != nil {
			// A tool the SDK would refuse (a bad schema from the upstream) is
			// left out rather than crashing the proxy.
			slog.Warn("pass-through: skipping upstream tool", "tool", tool.Name, "err", err)
			continue
		}
		n++
	}
	if n == 0 {
		_ = cs.Close()
		return nil, nil, errors.New("upstream has no usable tools")
	}
	return srv, cs, nil
}

// addForwardingTool adds tool to srv with a handler that forwards to cs. The
// SDK's AddTool panics on schemas it rejects; the schema is checked first,
// and a panic is still turned into an error.
func addForwardingTool(srv *mcp.Server, cs *mcp.ClientSession, tool *mcp.Tool) (err error) {
	if tool == nil || tool.Name == "" {
		return errors.New("tool without a name")
	}
	if err := checkObjectSchema(tool.InputSchema, true); err != nil {
		return fmt.Errorf("input schema: %w", err)
	}
	if err := checkObjectSchema(tool.OutputSchema, false); err != nil {
		return fmt.Errorf("output schema: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("SDK refused the tool: %v", r)
		}
	}()
	name := tool.Name
	srv.AddTool(tool, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		p := &mcp.CallToolParams{Name: name}
		if req.Params != nil {
			p.Meta = req.Params.Meta
			if len(req.Params.Arguments) > 0 {
				p.Arguments = req.Params.Arguments
			}
		}
		return cs.CallTool(ctx, p)
	})
	return nil
}

// checkObjectSchema checks that a schema marshals to a JSON object, of type
// "object" when it is an input schema, and is present when required.
func checkObjectSchema(schema any, input bool) error {
	if schema == nil {
		if input {
			return errors.New("missing")
		}
		return nil
	}
	b, err := json.Marshal(schema)
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return errors.New("not a JSON object")
	}
	if input && m["type"] != "object" {
		return fmt.Errorf(`type is %v, not "object"`, m["type"])
	}
	return nil
}

// runPassthroughMode is the child process: it serves the pass-through on
// front until ctx ends (for the HTTP fronts it first prints its address on
// stdout as "listening URL").
func runPassthroughMode(ctx context.Context, front passthroughFront, upstream []string, protocol string, stdout io.Writer) error {
	if len(upstream) == 0 {
		return errors.New("pass-through: no upstream command after --")
	}
	up := exec.CommandContext(ctx, upstream[0], upstream[1:]...)
	srv, cs, err := newPassthrough(ctx, up, protocol)
	if err != nil {
		return err
	}
	defer cs.Close()
	defer profileCPU("passthrough-" + string(front))()
	switch front {
	case frontStdio:
		if err := srv.Run(ctx, &mcp.StdioTransport{}); err != nil && ctx.Err() == nil {
			return fmt.Errorf("pass-through stdio front: %w", err)
		}
		return nil
	case frontHTTP, frontHTTPJSON:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("pass-through http front: %w", err)
		}
		h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
			&mcp.StreamableHTTPOptions{JSONResponse: front == frontHTTPJSON})
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		if _, err := fmt.Fprintf(stdout, "listening http://%s/mcp\n", l.Addr()); err != nil {
			return fmt.Errorf("announcing address: %w", err)
		}
		errc := make(chan error, 1)
		go func() { errc <- hs.Serve(l) }()
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = hs.Shutdown(sctx)
			return nil
		case err := <-errc:
			return fmt.Errorf("pass-through http front: %w", err)
		}
	default:
		return fmt.Errorf("pass-through: unknown front %q", front)
	}
}

// readListening reads the "listening URL" line a pass-through child prints.
func readListening(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return "", fmt.Errorf("reading pass-through address: %w", err)
		}
		return "", errors.New("pass-through exited before announcing its address")
	}
	var u string
	if _, err := fmt.Sscanf(sc.Text(), "listening %s", &u); err != nil {
		return "", fmt.Errorf("pass-through announced %q: %w", sc.Text(), err)
	}
	return u, nil
}
