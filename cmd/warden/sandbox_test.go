package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildWarden builds the warden binary: a sandbox's init re-executes the
// running binary, so the sandbox commands are tested end to end on the real
// one (which calls sandbox.MaybeInit first thing in main).
func buildWarden(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "warden-cli-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	_ = os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "warden")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building warden: %v\n%s", err, out)
	}
	return bin
}

func TestSandboxCLI(t *testing.T) {
	bin := buildWarden(t)
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "canary"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, int) {
		cmd := exec.Command(bin, append([]string{"--dir", data}, args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}

	out, code := run("sandbox", "check", "-o", "json")
	var rep struct {
		Tier       string `json:"tier"`
		Mechanisms struct {
			InForce map[string]bool `json:"in_force"`
		} `json:"mechanisms"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("check output: %v\n%s", err, out)
	}
	if code != 0 || rep.Tier != "advanced" || !rep.Mechanisms.InForce["pivot_root"] {
		t.Fatalf("sandbox check: exit %d, %s", code, out)
	}

	out, code = run("sandbox", "run", "--", "/bin/sh", "-c", "echo inside; exit 7")
	if code != 7 || !strings.Contains(out, "inside") {
		t.Fatalf("exit status not propagated: %d\n%s", code, out)
	}
	out, code = run("sandbox", "run", "--", "/bin/cat", filepath.Join(data, "canary"))
	if code == 0 || strings.Contains(out, "secret") {
		t.Fatalf("the data directory is visible in the default profile: %d\n%s", code, out)
	}
	out, code = run("sandbox", "run", "-e", "GREETING=hi", "--", "/bin/sh", "-c", `echo "$GREETING $HOME"; touch /workspace/x && echo wrote`)
	if code != 0 || !strings.Contains(out, "hi /workspace") || !strings.Contains(out, "wrote") {
		t.Fatalf("environment or workspace: %d\n%s", code, out)
	}
	if _, code = run("sandbox", "run", "--profile", "nope", "--", "/bin/true"); code == 0 {
		t.Fatal("an undefined profile was accepted")
	}
	if out, code = run("sandbox", "run", "--workspace", data, "--", "/bin/true"); code == 0 {
		t.Fatalf("the data directory was accepted as a workspace:\n%s", out)
	}
}
