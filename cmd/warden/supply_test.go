package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-run/warden/internal/mcptest"
)

// TestScanCLI scans a Claude Desktop configuration holding the real npm
// servers (clean), a server whose tools are poisoned, a package fetched at
// launch and a remote server, with the real binary (servers sandboxed,
// no network), in text, JSON and SARIF.
func TestScanCLI(t *testing.T) {
	bin := buildWarden(t)
	m := mcptest.ModulesFor(t)
	ecmd, eargs := mcptest.EverythingServer(t)
	mcmd, margs, _ := mcptest.MemoryServer(t)
	rug := filepath.Join(filepath.Dir(bin), "rugpull")
	if out, err := exec.Command("go", "build", "-o", rug, "../../supply/internal/rugpull").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	dir := t.TempDir()
	cfg := map[string]any{"mcpServers": map[string]any{
		"everything": map[string]any{"command": ecmd, "args": eargs},
		"memory":     map[string]any{"command": mcmd, "args": margs, "env": map[string]string{"MEMORY_FILE_PATH": "/tmp/scan-memory.json"}},
		"poisoned":   map[string]any{"command": rug, "args": append([]string{m.Node}, margs...), "env": map[string]string{"RUGPULL_POISON": "1", "PATH": os.Getenv("PATH")}},
		"fetched":    map[string]any{"command": "npx", "args": []string{"-y", "@modelcontextprotocol/server-everything"}},
		"remote":     map[string]any{"url": "https://mcp.example.com/mcp"},
	}}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "claude_desktop_config.json")
	os.WriteFile(path, b, 0o644)
	run := func(args ...string) (string, int) {
		out, err := exec.Command(bin, append([]string{"--dir", dir}, args...)...).Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	out, code := run("scan", "-o", "json", path)
	var rep struct {
		Servers []struct {
			Name, Status string
			Tools        int
		}
		Findings []struct {
			Rule, Severity, Server, Tool string
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	status := map[string]string{}
	for _, s := range rep.Servers {
		status[s.Name] = s.Status
	}
	if status["everything"] != "listed" || status["memory"] != "listed" || status["poisoned"] != "listed" || status["fetched"] != "not_launched" || status["remote"] != "not_launched" {
		t.Fatalf("servers %+v", rep.Servers)
	}
	bad := map[string]bool{}
	for _, f := range rep.Findings {
		if f.Severity == "high" || f.Severity == "critical" {
			bad[f.Server] = true
		}
	}
	if !bad["poisoned"] || !bad["fetched"] || bad["everything"] || bad["memory"] {
		t.Fatalf("findings %+v", rep.Findings)
	}
	out, _ = run("scan", "-o", "sarif", path)
	var sarif struct {
		Version string `json:"version"`
		Runs    []struct {
			Results []struct {
				RuleID string `json:"ruleId"`
				Level  string `json:"level"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(out), &sarif); err != nil || sarif.Version != "2.1.0" || len(sarif.Runs) != 1 || len(sarif.Runs[0].Results) == 0 {
		t.Fatalf("sarif: %v\n%s", err, out)
	}
	out, _ = run("scan", path)
	if !strings.Contains(out, "hidden-instruction-tag") || !strings.Contains(out, "unpinned-package-launch") {
		t.Fatalf("text:\n%s", out)
	}
}

// TestToolsCLI: init, configure the real memory server, lock, status, diff.
func TestToolsCLI(t *testing.T) {
	bin := buildWarden(t)
	mcmd, margs, _ := mcptest.MemoryServer(t)
	dir := filepath.Join(t.TempDir(), "w")
	run := func(args ...string) (string, int) {
		out, err := exec.Command(bin, append([]string{"--dir", dir}, args...)...).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	if out, code := run("init"); code != 0 {
		t.Fatal(out)
	}
	cfgPath := filepath.Join(dir, "warden.yaml")
	b, _ := os.ReadFile(cfgPath)
	args, _ := json.Marshal(margs)
	cfg := strings.Replace(string(b), "  upstreams:\n", "  upstreams:\n    - name: npmmem\n      stdio: {command: "+mcmd+", args: "+string(args)+", env: {MEMORY_FILE_PATH: /tmp/tools-cli-memory.json}}\n", 1)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := run("tools", "status"); code == 0 || !strings.Contains(out, "warden tools lock") {
		t.Fatalf("status without a lock: %d %s", code, out)
	}
	out, code := run("tools", "lock")
	if code != 0 || !strings.Contains(out, "npmmem: 9 tools pinned") {
		t.Fatalf("lock: %d %s", code, out)
	}
	if out, code := run("tools", "status"); code != 0 || !strings.Contains(out, "@modelcontextprotocol/server-memory") {
		t.Fatalf("status: %d %s", code, out)
	}
	if out, code := run("tools", "diff"); code != 0 || !strings.Contains(out, "no changes") {
		t.Fatalf("diff: %d %s", code, out)
	}
}
