package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-run/warden/policy"
)

func policyRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

const (
	examplePolicy = "../../examples/policy/warden.cedar"
	exampleCases  = "../../examples/policy/cases.yaml"
)

func TestPolicyValidate(t *testing.T) {
	out, err := policyRun(t, "policy", "validate", examplePolicy)
	if err != nil || !strings.Contains(out, "valid: 12 policies") {
		t.Fatalf("%q %v", out, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.cedar")
	os.WriteFile(bad, []byte("permit(principal, action, resource);\n\npermit(principal == User::\"x\", action, resource);\n"), 0o600)
	_, err = policyRun(t, "policy", "validate", bad)
	if err == nil || !strings.Contains(err.Error(), "bad.cedar:3:1") || !strings.Contains(err.Error(), "User") {
		t.Fatalf("invalid file: %v", err)
	}
	out, err = policyRun(t, "policy", "validate", "-o", "json", examplePolicy)
	var v struct {
		Policies []policy.Info `json:"policies"`
	}
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || len(v.Policies) != 12 || v.Policies[0].ID != "read-only-tools" {
		t.Fatalf("json: %q %v", out, err)
	}
}

func TestPolicyTest(t *testing.T) {
	out, err := policyRun(t, "policy", "test", examplePolicy, "--cases", exampleCases)
	if err != nil || strings.Contains(out, "FAIL") || !strings.Contains(out, "0 failed") {
		t.Fatalf("example cases: %v\n%s", err, out)
	}
	cases := filepath.Join(t.TempDir(), "cases.yaml")
	os.WriteFile(cases, []byte(`
agents:
  a: {model: claude-sonnet-4, tier: advanced}
cases:
  - name: right
    agent: a
    tool: search.query
    expect: deny
  - name: wrong
    agent: a
    tool: files.wipe
    expect: allow
  - name: unknown agent
    agent: nobody
    tool: search.query
    expect: deny
`), 0o600)
	out, err = policyRun(t, "policy", "test", examplePolicy, "--cases", cases)
	var ec exitCoder
	if !errors.As(err, &ec) || ec.ExitCode() != 1 {
		t.Fatalf("failing cases: err %v", err)
	}
	for _, want := range []string{"PASS  right", "FAIL  wrong: got deny, want allow", "FAIL  unknown agent: agent \"nobody\"", "3 cases: 1 passed, 2 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	os.WriteFile(cases, []byte("cases:\n  - name: x\n    agent: a\n    expcet: allow\n"), 0o600)
	if _, err := policyRun(t, "policy", "test", examplePolicy, "--cases", cases); err == nil || !strings.Contains(err.Error(), "expcet") {
		t.Fatalf("misspelt field: %v", err)
	}
}

// apply and list go through the running control plane, so that the
// policy it decides with changes at once.
func TestPolicyApplyList(t *testing.T) {
	if _, err := policyRun(t, "--dir", t.TempDir(), "policy", "list"); err == nil || !strings.Contains(err.Error(), "warden init") {
		t.Fatalf("list without a data directory: %v", err)
	}
	dir := filepath.Join(t.TempDir(), ".warden")
	serve(t, dir)
	out, err := policyRun(t, "--dir", dir, "policy", "list")
	if err != nil || !strings.Contains(out, "no policy applied") {
		t.Fatalf("empty list: %q %v", out, err)
	}
	out, err = policyRun(t, "--dir", dir, "policy", "apply", examplePolicy, "-m", "first")
	if err != nil || !strings.Contains(out, "policy version 1") {
		t.Fatalf("apply: %q %v", out, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.cedar")
	os.WriteFile(bad, []byte("permit(principal"), 0o600)
	if _, err := policyRun(t, "--dir", dir, "policy", "apply", bad); err == nil {
		t.Fatal("applied an invalid file")
	}
	if _, err := policyRun(t, "--dir", dir, "policy", "apply", examplePolicy); err != nil {
		t.Fatal(err)
	}
	out, err = policyRun(t, "--dir", dir, "policy", "list", "-o", "json")
	var vs []policy.Version
	if err != nil || json.Unmarshal([]byte(out), &vs) != nil {
		t.Fatalf("list: %q %v", out, err)
	}
	if len(vs) != 2 || vs[0].Version != 2 || !vs[0].Active || vs[1].Active || vs[1].Message != "first" || vs[1].Name != "warden.cedar" || vs[1].Policies != 12 {
		t.Fatalf("versions %+v", vs)
	}
	out, err = policyRun(t, "--dir", dir, "policy", "list")
	if err != nil || !strings.Contains(out, "VERSION") || !strings.Contains(out, "first") {
		t.Fatalf("list: %q %v", out, err)
	}
}

func TestPolicySchema(t *testing.T) {
	out, err := policyRun(t, "policy", "schema")
	if err != nil || !strings.Contains(out, "action call appliesTo") {
		t.Fatalf("%q %v", out, err)
	}
}
