package demo

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/internal/demotools"
	"github.com/warden-run/warden/sandbox"
	"github.com/warden-run/warden/tier"
)

// TestMain lets this test binary play the warden binary's "demo-tool NAME".
func TestMain(m *testing.M) {
	sandbox.MaybeInit() // the sandbox's init re-executes this binary
	if len(os.Args) == 3 && os.Args[1] == "demo-tool" {
		s, err := demotools.New(os.Args[2])
		if err != nil {
			os.Exit(2)
		}
		_ = s.Run(context.Background(), &mcp.StdioTransport{})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestDemoDeniesTheCompromisedAgentEverything(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep, err := Run(context.Background(), &out, Options{Exe: exe, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if n := len(rep.Allowed(WellBehaved)); n != 5 {
		t.Errorf("well-behaved agent: %d calls allowed, want 5\n%s", n, out.String())
	}
	if d := rep.Denied(WellBehaved); len(d) != 1 || d[0].Code != "prompt_injection_blocked" {
		t.Errorf("the injected email was not withheld: %+v", d)
	}
	if n := len(rep.Allowed(Compromised)); n != 0 {
		t.Errorf("compromised agent: %d calls allowed\n%s", n, out.String())
	}
	codes := map[string]bool{}
	for _, s := range rep.Denied(Compromised) {
		codes[s.Code] = true
	}
	for _, want := range []string{"constraint_violated", "tool_not_granted", "tool_budget_exhausted", "taint_heuristic", "grant_revoked", "task_completed"} {
		if !codes[want] {
			t.Errorf("no denial with %s", want)
		}
	}
	var poison []string
	for _, s := range rep.Poisoning {
		poison = append(poison, s.Code)
	}
	if strings.Join(poison, ",") != "taint_heuristic,memory_quarantined," || rep.Steered() {
		t.Errorf("memory poisoning: %v, later task steered %v: %s", poison, rep.Steered(), rep.Recalled)
	}
	if !strings.Contains(rep.Recalled, "[UNTRUSTED memory") {
		t.Errorf("the untrusted entry came back unmarked: %s", rep.Recalled)
	}
	if !rep.Contained || rep.TimeToContain <= 0 || rep.Approved != 2 {
		t.Errorf("response: contained %v in %v, %d calls approved", rep.Contained, rep.TimeToContain, rep.Approved)
	}
	if rep.Assessment == nil || rep.Assessment.Overall != tier.Advanced {
		t.Errorf("assessment: %+v", rep.Assessment)
	}
	if !rep.RugPullHeld {
		t.Error("the rug-pulled tool stayed listed")
	}
	var supply []string
	for _, s := range rep.Steps {
		if s.Agent == Supply {
			supply = append(supply, s.Code)
			if s.Code == "upstream_unavailable" && !strings.Contains(s.Detail, "differs from warden.lock") {
				t.Errorf("tampered server refused for another reason: %s", s.Detail)
			}
		}
	}
	if strings.Join(supply, ",") != "tool_quarantined,upstream_unavailable" {
		t.Errorf("supply chain: %v", supply)
	}
	if len(rep.Probes) < 5 || len(rep.Escapes) != 0 {
		t.Errorf("malicious tool server: probes %v, escapes %v", rep.Probes, rep.Escapes)
	}
	for _, want := range []string{"The well-behaved agent does its task", "DENIED constraint_violated", "0 of 8 calls allowed", "2 of 3 writes refused", "0 of 6 attempts got out", "rule injection-then-sensitive-call"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
