package mcptest

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
)

// ModulesFor finds testdata/npm from the test's working directory. The test is skipped, with a message naming `make deps`, when the npm
// dependencies or Node.js are missing (`make test` installs them first, so
// CI never skips); any other problem fails it.
func ModulesFor(t testing.TB) *Modules {
	t.Helper()
	m, err := Find(t.Context(), ".")
	if errors.Is(err, ErrNotInstalled) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatalf("mcptest: %v", err)
	}
	return m
}

// NodeModules is the absolute path of testdata/npm/node_modules; see
// ModulesFor for when the test is skipped.
func NodeModules(t testing.TB) string {
	t.Helper()
	return ModulesFor(t).NodeModules()
}

// EverythingServer is how to launch @modelcontextprotocol/server-everything
// over stdio: node and the package's entry point with the "stdio" argument.
func EverythingServer(t testing.TB) (command string, args []string) {
	t.Helper()
	c, err := ModulesFor(t).Everything()
	if err != nil {
		t.Fatalf("mcptest: %v", err)
	}
	return c.Path, c.Args
}

// FilesystemServer is how to launch @modelcontextprotocol/server-filesystem
// over stdio, confined to roots; with no roots, to a fresh t.TempDir().
func FilesystemServer(t testing.TB, roots ...string) (command string, args []string) {
	t.Helper()
	if len(roots) == 0 {
		roots = []string{t.TempDir()}
	}
	c, err := ModulesFor(t).Filesystem(roots...)
	if err != nil {
		t.Fatalf("mcptest: %v", err)
	}
	return c.Path, c.Args
}

// MemoryServer is how to launch @modelcontextprotocol/server-memory over
// stdio; env (KEY=VALUE, to add to the environment) sets MEMORY_FILE_PATH to
// a file in a fresh t.TempDir().
func MemoryServer(t testing.TB) (command string, args, env []string) {
	t.Helper()
	c, err := ModulesFor(t).Memory(filepath.Join(t.TempDir(), "memory.jsonl"))
	if err != nil {
		t.Fatalf("mcptest: %v", err)
	}
	return c.Path, c.Args, c.Env
}

// TSClientScript is the absolute path of testdata/npm/client.mjs, run with
// node (see RunTSClient for its arguments and output).
func TSClientScript(t testing.TB) string {
	t.Helper()
	return ModulesFor(t).ClientScript()
}

// BridgeURL starts kind (Supergateway or MCPProxy) in front of the stdio
// server command (extra environment env) and returns its streamable HTTP
// MCP endpoint; the bridge is stopped when the test ends.
func BridgeURL(t testing.TB, kind BridgeKind, command string, args, env []string) string {
	t.Helper()
	m := ModulesFor(t)
	b, err := m.StartBridge(t.Context(), kind, Command{Path: command, Args: args, Env: env})
	if err != nil {
		t.Fatalf("mcptest: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("mcptest: stopping %s: %v", kind, err)
		}
	})
	return b.URL
}

// RunTSClient runs the TypeScript SDK client against url for the test; see
// Modules.RunTSClient.
func RunTSClient(t testing.TB, url, tool string, args json.RawMessage, opts TSClientOptions) (*TSClientResult, error) {
	t.Helper()
	return ModulesFor(t).RunTSClient(t.Context(), url, tool, args, opts)
}
