package supply

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/internal/mcptest"
)

// realServers are the npm servers the tests run, as gateway upstreams.
func realServers(t *testing.T) []config.Upstream { return realServersB(t) }

func realServersB(t testing.TB) []config.Upstream {
	t.Helper()
	ecmd, eargs := mcptest.EverythingServer(t)
	fcmd, fargs := mcptest.FilesystemServer(t)
	mcmd, margs, menv := mcptest.MemoryServer(t)
	env := map[string]string{}
	for _, kv := range menv {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return []config.Upstream{
		{Name: "everything", Stdio: &config.StdioUpstream{Command: ecmd, Args: eargs}},
		{Name: "filesystem", Stdio: &config.StdioUpstream{Command: fcmd, Args: fargs}},
		{Name: "memory", Stdio: &config.StdioUpstream{Command: mcmd, Args: margs, Env: env}},
	}
}

// listStdio launches a stdio server directly and lists its tools.
func listStdio(t *testing.T, s *config.StdioUpstream) []*mcp.Tool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.Command(s.Command, s.Args...)
	for k, v := range s.Env {
		cmd.Env = append(cmd.Environ(), k+"="+v)
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "supply-test", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connecting to %s: %v", s.Command, err)
	}
	defer cs.Close()
	var out []*mcp.Tool
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tool)
	}
	return out
}

func writeFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o644) }

func jsonRaw(s string) json.RawMessage { return json.RawMessage(s) }
