package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// enrolAgent registers and enrols an agent through the CLI and returns its
// credential directory.
func enrolAgent(t *testing.T, dir, name string) string {
	t.Helper()
	ctx := context.Background()
	out, err := run(ctx, "agent", "register", name, "--owner", "ops@example.org", "--model", "claude-sonnet", "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(t.TempDir(), name)
	if out, err := run(ctx, "agent", "credentials", name, "--join-token", joinTokenLine.FindStringSubmatch(out)[1], "--out", creds, "--dir", dir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return creds
}

const walkthroughPolicy = `
@id("files-and-search")
permit (principal, action == Action::"call", resource)
when { resource.server == "files" || resource.server == "search" };

@id("delegation")
permit (principal, action == Action::"delegate", resource);

@id("no-destructive")
forbid (principal, action == Action::"call", resource)
when { resource.labels.contains("destructive") };
`

// The "done when", through the real CLI: an agent is granted a
// task, the grant authorizes exactly the allowed calls and denies the rest
// with reasons, delegation narrows, and revoking the parent denies the
// child's next call.
func TestTaskWalkthrough(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), ".warden")
	serve(t, dir)
	billing := enrolAgent(t, dir, "billing-bot")
	enrolAgent(t, dir, "helper-bot")
	pol := filepath.Join(t.TempDir(), "org.cedar")
	os.WriteFile(pol, []byte(walkthroughPolicy), 0o600)
	if out, err := run(ctx, "policy", "apply", pol, "--dir", dir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	work := t.TempDir()
	parent := filepath.Join(work, "parent.jwt")
	out, err := run(ctx, "task", "grant", "--agent", "billing-bot", "--intent", "reconcile Q3 invoices",
		"--allow", `files.read_file:{"path": {"path_within": ["/data"]}}`, "--allow", "search.*", "--allow", "files.delete_file",
		"--ttl", "15m", "--budget", "50", "--delegation", "1", "--out", parent, "--dir", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	taskID := regexp.MustCompile(`task (t_[0-9a-f]+) opened`).FindStringSubmatch(out)[1]
	if fi, _ := os.Stat(parent); fi.Mode().Perm() != 0o600 {
		t.Errorf("grant file mode %v", fi.Mode().Perm())
	}

	decide := func(agent, grantFile, tool, args string, labels ...string) (string, error) {
		a := []string{"authorize", "--agent", agent, "--grant", grantFile, "--tool", tool, "--args", args, "--dir", dir}
		for _, l := range labels {
			a = append(a, "--label", l)
		}
		return run(ctx, a...)
	}
	for _, c := range []struct {
		tool, args string
		labels     []string
		want       string
	}{
		{"files.read_file", `{"path": "/data/q3.csv"}`, []string{"reads"}, "ALLOW files.read_file (allow)"},
		{"search.web", `{"q": "vat rates"}`, []string{"reads"}, "ALLOW"},
		{"files.read_file", `{"path": "/data/../etc/shadow"}`, []string{"reads"}, "DENY files.read_file (constraint_violated)"},
		{"files.write_file", `{"path": "/data/x"}`, []string{"writes"}, "DENY files.write_file (tool_not_granted)"},
		{"files.delete_file", `{"path": "/data/x"}`, []string{"destructive"}, "DENY files.delete_file (policy_forbid)"},
	} {
		out, err := decide("billing-bot", parent, c.tool, c.args, c.labels...)
		if !strings.Contains(out, c.want) || (err == nil) != strings.HasPrefix(c.want, "ALLOW") {
			t.Errorf("%s %s: %q %v, want %q", c.tool, c.args, out, err, c.want)
		}
	}
	// The grant is useless to another agent.
	if out, _ := decide("helper-bot", parent, "search.web", `{}`, "reads"); !strings.Contains(out, "grant_wrong_agent") {
		t.Errorf("stolen grant: %q", out)
	}

	// Delegation narrows and never widens.
	child := filepath.Join(work, "child.jwt")
	if out, err := run(ctx, "task", "delegate", taskID, "--creds", billing, "--grant", parent, "--to", "helper-bot",
		"--intent", "fetch one file", "--allow", "shell.exec", "--dir", dir); err == nil || !strings.Contains(err.Error(), "delegation_widening") {
		t.Fatalf("widening delegation: %v\n%s", err, out)
	}
	if out, err := run(ctx, "task", "delegate", taskID, "--creds", billing, "--grant", parent, "--to", "helper-bot",
		"--intent", "fetch one file", "--allow", "files.read_file", "--budget", "3", "--out", child, "--dir", dir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := decide("helper-bot", child, "files.read_file", `{"path": "/data/q3.csv"}`, "reads"); err != nil {
		t.Fatalf("child call: %v\n%s", err, out)
	}
	if out, _ := decide("helper-bot", child, "files.read_file", `{"path": "/home/x"}`, "reads"); !strings.Contains(out, "constraint_violated") || !strings.Contains(out, "ancestor task "+taskID) {
		t.Errorf("child outside the parent's constraint: %q", out)
	}
	if out, _ := decide("helper-bot", child, "search.web", `{}`, "reads"); !strings.Contains(out, "tool_not_granted") {
		t.Errorf("child using a parent tool it was not given: %q", out)
	}

	// Revoking the parent denies the child's next call.
	if out, err := run(ctx, "task", "revoke", taskID, "--reason", "suspicious", "--dir", dir); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, _ := decide("helper-bot", child, "files.read_file", `{"path": "/data/q3.csv"}`, "reads"); !strings.Contains(out, "ancestor_revoked") {
		t.Errorf("child after the parent was revoked: %q", out)
	}
	out, err = run(ctx, "task", "list", "--dir", dir)
	if err != nil || strings.Count(out, "revoked") != 2 {
		t.Errorf("task list: %v\n%s", err, out)
	}
	if out, err := run(ctx, "task", "show", taskID, "--dir", dir); err != nil || !strings.Contains(out, "suspicious") {
		t.Errorf("task show: %v\n%s", err, out)
	}
	// An agent completes its own task; its next call is denied.
	own := filepath.Join(work, "own.jwt")
	out, err = run(ctx, "task", "grant", "--creds", billing, "--intent", "look something up", "--allow", "search.*", "--out", own, "--dir", dir)
	if err != nil {
		t.Fatalf("agent opening its own task: %v\n%s", err, out)
	}
	ownID := regexp.MustCompile(`task (t_[0-9a-f]+) opened`).FindStringSubmatch(out)[1]
	if _, err := run(ctx, "task", "complete", ownID, "--creds", billing, "--dir", dir); err != nil {
		t.Fatal(err)
	}
	if out, _ := decide("billing-bot", own, "search.web", `{}`, "reads"); !strings.Contains(out, "task_completed") {
		t.Errorf("call after completion: %q", out)
	}
}

func TestTaskCLIRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), ".warden")
	serve(t, dir)
	enrolAgent(t, dir, "a")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"task", "grant", "--agent", "a", "--intent", "x"}, "--allow"},
		{[]string{"task", "grant", "--agent", "a", "--intent", "x", "--allow", "files.read:{not json"}, "constraints after ':'"},
		{[]string{"task", "grant", "--agent", "a", "--intent", "x", "--allow", `files.read:{"p": {"$ref": "x"}}`}, "not allowed"},
		{[]string{"task", "grant", "--agent", "a", "--intent", "x", "--allow", "files.read", "--ttl", "100h"}, "at most"},
		{[]string{"task", "grant", "--agent", "nobody", "--intent", "x", "--allow", "files.read"}, "identity_unknown"},
		{[]string{"task", "grant", "--intent", "x", "--allow", "files.read"}, "name the agent"},
		{[]string{"task", "show", "t_nope"}, "task_unknown"},
		{[]string{"task", "delegate", "t_x", "--grant", "g"}, "required"},
		{[]string{"authorize", "--agent", "a"}, "required"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			_, err := run(ctx, append(c.args, "--dir", dir)...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
}
