package supply

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ClientServer is one MCP server an MCP client's configuration launches or
// reaches.
type ClientServer struct {
	Name    string            `json:"name"`
	Source  string            `json:"source"` // the configuration file
	Scope   string            `json:"scope,omitempty"`
	Command string            `json:"command,omitempty"`
	Args    []string          `json:"args,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Cwd     string            `json:"cwd,omitempty"`
	URL     string            `json:"url,omitempty"`
	Type    string            `json:"type"` // stdio, http or sse
}

// maxClientConfigBytes bounds a client configuration read.
const maxClientConfigBytes = 16 << 20

// clientEntry is a server entry in any of the formats: Claude Desktop,
// Claude Code and Cursor ("mcpServers"), VS Code ("servers", with "type").
type clientEntry struct {
	Type    string            `json:"type"`
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	Env     map[string]string `json:"env"`
	Cwd     string            `json:"cwd"`
	URL     string            `json:"url"`
	// ServerURL is an older spelling some clients accept.
	ServerURL string `json:"serverUrl"`
}

// ParseClientConfig reads an MCP client configuration: Claude Desktop's
// claude_desktop_config.json and Cursor's mcp.json ({"mcpServers": ...}),
// Claude Code's .mcp.json and ~/.claude.json (also per-project
// "projects.<dir>.mcpServers"), VS Code's .vscode/mcp.json ({"servers":
// ...}) and settings.json ({"mcp": {"servers": ...}}). JSON with comments
// and trailing commas (as VS Code writes) is accepted.
func ParseClientConfig(source string, data []byte) ([]ClientServer, error) {
	if len(data) > maxClientConfigBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", source, maxClientConfigBytes)
	}
	var root map[string]json.RawMessage
	if err := json.Unmarshal(stripJSONC(data), &root); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object: %w", source, err)
	}
	var out []ClientServer
	add := func(scope string, raw json.RawMessage) error {
		var m map[string]clientEntry
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("%s: %s: %w", source, scope, err)
		}
		for _, name := range sortedKeys(m) {
			e := m[name]
			s := ClientServer{Name: name, Source: source, Scope: scope, Command: e.Command, Args: e.Args, Env: e.Env, Cwd: e.Cwd, URL: e.URL, Type: strings.ToLower(e.Type)}
			if s.URL == "" {
				s.URL = e.ServerURL
			}
			switch {
			case s.Type == "" && s.Command != "":
				s.Type = "stdio"
			case s.Type == "" && s.URL != "":
				s.Type = "http"
			case s.Type == "streamable-http", s.Type == "streamablehttp":
				s.Type = "http"
			}
			out = append(out, s)
		}
		return nil
	}
	found := false
	for _, key := range []string{"mcpServers", "servers"} {
		if raw, ok := root[key]; ok {
			found = true
			if err := add(key, raw); err != nil {
				return nil, err
			}
		}
	}
	if raw, ok := root["mcp"]; ok {
		var m struct {
			Servers json.RawMessage `json:"servers"`
		}
		if json.Unmarshal(raw, &m) == nil && m.Servers != nil {
			found = true
			if err := add("mcp.servers", m.Servers); err != nil {
				return nil, err
			}
		}
	}
	if raw, ok := root["projects"]; ok {
		var projects map[string]struct {
			MCPServers json.RawMessage `json:"mcpServers"`
		}
		if json.Unmarshal(raw, &projects) == nil {
			for _, dir := range sortedKeys(projects) {
				if p := projects[dir]; p.MCPServers != nil {
					found = true
					if err := add("projects."+dir, p.MCPServers); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("%s: no MCP servers (looked for mcpServers, servers, mcp.servers, projects.*.mcpServers)", source)
	}
	return out, nil
}

// stripJSONC removes // and /* */ comments and trailing commas outside
// strings.
func stripJSONC(b []byte) []byte {
	out := make([]byte, 0, len(b))
	inStr, esc := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inStr {
			out = append(out, c)
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch {
		case c == '"':
			inStr = true
			out = append(out, c)
		case c == '/' && i+1 < len(b) && b[i+1] == '/':
			for i < len(b) && b[i] != '\n' {
				i++
			}
			out = append(out, '\n')
		case c == '/' && i+1 < len(b) && b[i+1] == '*':
			i += 2
			for i+1 < len(b) && !(b[i] == '*' && b[i+1] == '/') {
				i++
			}
			i++
		case c == ']' || c == '}':
			j := len(out) - 1
			for j >= 0 && (out[j] == ' ' || out[j] == '\t' || out[j] == '\n' || out[j] == '\r') {
				j--
			}
			if j >= 0 && out[j] == ',' {
				out = append(out[:j], out[j+1:]...)
			}
			out = append(out, c)
		default:
			out = append(out, c)
		}
	}
	return bytes.TrimSpace(out)
}

// DefaultClientConfigs lists the client configurations that exist on this
// machine, in home and in the working directory.
func DefaultClientConfigs(home, cwd string) []string {
	cands := []string{
		filepath.Join(home, ".config", "Claude", "claude_desktop_config.json"),
		filepath.Join(home, "Library", "Application Support", "Claude", "claude_desktop_config.json"),
		filepath.Join(home, ".claude.json"),
		filepath.Join(home, ".cursor", "mcp.json"),
		filepath.Join(home, ".config", "Code", "User", "mcp.json"),
		filepath.Join(home, ".config", "Code", "User", "settings.json"),
		filepath.Join(cwd, ".mcp.json"),
		filepath.Join(cwd, ".cursor", "mcp.json"),
		filepath.Join(cwd, ".vscode", "mcp.json"),
	}
	var out []string
	for _, p := range cands {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// ConfigFindings are findings about how a client launches a server, before
// any tool is listed: launchers that fetch at launch, code-loading
// variables.
func ConfigFindings(s ClientServer) []Finding {
	var out []Finding
	id := s.Name
	if s.Type == "stdio" {
		if err := CheckFetcher(s.Command, s.Args); err != nil {
			out = append(out, Finding{Rule: RuleUnpinnedLaunch, Severity: SeverityHigh, Server: id, Field: "command",
				Excerpt: clip(s.Command+" "+strings.Join(s.Args, " "), excerptMax), Reason: strings.TrimPrefix(err.Error(), ErrFetchesAtLaunch.Error()+": ")})
		}
		for _, k := range sortedKeys(s.Env) {
			if isCodeEnv(k) {
				out = append(out, Finding{Rule: RuleCodeEnv, Severity: SeverityMedium, Server: id, Field: "env." + k,
					Excerpt: clip(k+"="+s.Env[k], excerptMax), Reason: "a variable that changes what code the server loads"})
			}
		}
	}
	if s.Type == "" {
		out = append(out, Finding{Rule: "unknown-transport", Severity: SeverityLow, Server: id, Field: "type", Reason: "neither a command nor a URL"})
	}
	return out
}
