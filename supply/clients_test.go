package supply

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Each client's configuration, as the client writes it, gives the servers
// it launches or reaches, with the transport spelled one way.
func TestParseClientConfig(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       []ClientServer
	}{
		{"Claude Desktop", `{"mcpServers": {
			"fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/data"], "env": {"NODE_OPTIONS": "--require x"}},
			"web": {"url": "https://mcp.example/mcp"}}}`,
			[]ClientServer{
				{Name: "fs", Scope: "mcpServers", Type: "stdio", Command: "npx", Args: []string{"-y", "@modelcontextprotocol/server-filesystem", "/data"}, Env: map[string]string{"NODE_OPTIONS": "--require x"}},
				{Name: "web", Scope: "mcpServers", Type: "http", URL: "https://mcp.example/mcp"},
			}},
		{"VS Code mcp.json with comments and trailing commas", `{
			// servers for this workspace
			"servers": {
				"git": {"type": "stdio", "command": "uvx", "args": ["mcp-server-git",],}, /* old: "x" */
				"remote": {"type": "streamable-http", "serverUrl": "https://r.example/mcp", "headers": {"a": "//not a comment"}},
			},
		}`,
			[]ClientServer{
				{Name: "git", Scope: "servers", Type: "stdio", Command: "uvx", Args: []string{"mcp-server-git"}},
				{Name: "remote", Scope: "servers", Type: "http", URL: "https://r.example/mcp"},
			}},
		{"VS Code settings.json", `{"editor.tabSize": 2, "mcp": {"servers": {"s": {"type": "SSE", "url": "https://s.example/sse"}}}}`,
			[]ClientServer{{Name: "s", Scope: "mcp.servers", Type: "sse", URL: "https://s.example/sse"}}},
		{"Claude Code user file with projects", `{"mcpServers": {}, "projects": {
			"/b": {"mcpServers": {"y": {"command": "./y"}}},
			"/a": {"mcpServers": {"x": {"command": "./x", "cwd": "/a"}}},
			"/c": {"allowedTools": []}}}`,
			[]ClientServer{
				{Name: "x", Scope: "projects./a", Type: "stdio", Command: "./x", Cwd: "/a"},
				{Name: "y", Scope: "projects./b", Type: "stdio", Command: "./y"},
			}},
		{"string holding comment and escape", `{"mcpServers": {"q": {"command": "sh", "args": ["-c", "echo \"/* x */\" // y"]}}}`,
			[]ClientServer{{Name: "q", Scope: "mcpServers", Type: "stdio", Command: "sh", Args: []string{"-c", `echo "/* x */" // y`}}}},
		{"neither command nor URL", `{"mcpServers": {"odd": {}}}`,
			[]ClientServer{{Name: "odd", Scope: "mcpServers"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseClientConfig("cfg.json", []byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.want {
				tc.want[i].Source = "cfg.json"
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// A file Warden cannot read as a client configuration is an error naming
// the file and what is wrong, never an empty list of servers.
func TestParseClientConfigRefuses(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"empty", ``, "not a JSON object"},
		{"array", `[{"mcpServers": {}}]`, "not a JSON object"},
		{"unterminated", `{"mcpServers": {"a": {"command": "x"}`, "not a JSON object"},
		{"no servers", `{"theme": "dark"}`, "no MCP servers"},
		{"servers not an object", `{"mcpServers": ["a"]}`, "mcpServers"},
		{"args not strings", `{"servers": {"a": {"command": "x", "args": [1]}}}`, "servers"},
		{"too large", `{"mcpServers": {}, "pad": "` + strings.Repeat("a", maxClientConfigBytes) + `"}`, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseClientConfig("cfg.json", []byte(tc.data))
			if err == nil {
				t.Fatalf("accepted: %+v", got)
			}
			if !strings.Contains(err.Error(), "cfg.json") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want one naming the file and %q", err, tc.want)
			}
		})
	}
}

func TestDefaultClientConfigs(t *testing.T) {
	home, cwd := t.TempDir(), t.TempDir()
	want := []string{
		filepath.Join(cwd, ".vscode", "mcp.json"),
		filepath.Join(home, ".claude.json"),
	}
	for _, p := range want {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(`{}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A directory where a file is expected is not a configuration.
	if err := os.MkdirAll(filepath.Join(home, ".cursor", "mcp.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	got := DefaultClientConfigs(home, cwd)
	if len(got) != 2 || !slices.Contains(got, want[0]) || !slices.Contains(got, want[1]) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// FuzzParseClientConfig: client configurations are files anyone who can
// write to a project can change. No panic; JSON without comments or
// trailing commas passes the comment stripper unchanged; every server found
// names the file it came from.
func FuzzParseClientConfig(f *testing.F) {
	f.Add([]byte(`{"mcpServers": {"a": {"command": "x", "args": ["y"]}}}`))
	f.Add([]byte(`{"servers": {"a": {"type": "http", "url": "https://x"},}, // c
	}`))
	f.Add([]byte(`{"mcp": {"servers": {"a": {"url": "u"}}}, "projects": {"/p": {"mcpServers": {"b": {"command": "c"}}}}}`))
	f.Add([]byte(`{"a": "\"/*", "b": [1, /* x */ 2,], "c": "\\"} /*`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if json.Valid(data) {
			if got, want := stripJSONC(data), bytes.TrimSpace(data); !bytes.Equal(got, want) {
				t.Fatalf("stripping changed valid JSON:\n in %q\nout %q", want, got)
			}
		}
		servers, err := ParseClientConfig("f", data)
		if err != nil {
			return
		}
		for _, s := range servers {
			if s.Source != "f" {
				t.Fatalf("server without its source: %+v", s)
			}
		}
	})
}
