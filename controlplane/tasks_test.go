package controlplane

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/identity"
)

const apiPolicy = `
@id("agents-may-use-files-and-search")
permit (principal, action == Action::"call", resource)
when { resource.server == "files" || resource.server == "search" };

@id("agents-may-delegate")
permit (principal, action == Action::"delegate", resource);

@id("never-shell")
forbid (principal, action == Action::"call", resource == Tool::"shell.exec");
`

func scopeOf(t *testing.T, js string) grant.Scope {
	t.Helper()
	var s grant.Scope
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTasksGrantsAndDecisionsOverTheAPI(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	if _, err := h.admin.ApplyPolicy(ctx, PolicyRequest{Name: "org.cedar", Source: "permit (principal, action, resource) when { oops };"}); apiCode(err) != "invalid_policy" {
		t.Fatalf("a broken policy file was applied: %v", err)
	}
	v, err := h.admin.ApplyPolicy(ctx, PolicyRequest{Name: "org.cedar", Source: apiPolicy, Message: "initial"})
	if err != nil || v.Version != 1 || v.Policies != 3 {
		t.Fatalf("apply: %+v %v", v, err)
	}
	billing := h.enrol(t, "billing-bot")
	helper := h.enrol(t, "helper-bot")
	bc, _ := NewClient(h.url, billing)
	hc, _ := NewClient(h.url, helper)

	// Policy forbids shell.exec whatever the arguments: refused at mint.
	_, err = h.admin.OpenTask(ctx, TaskRequest{Agent: "billing-bot", Intent: "x", Allow: scopeOf(t, `[{"tool": "shell.exec"}]`)})
	if apiCode(err) != "policy_forbids_tool" {
		t.Fatalf("minted a grant for a forbidden tool: %v", err)
	}
	// An agent opens its own task; not another's.
	if _, err := bc.OpenTask(ctx, TaskRequest{Agent: "helper-bot", Intent: "x", Allow: scopeOf(t, `[{"tool": "files.*"}]`)}); apiCode(err) != "forbidden" {
		t.Fatalf("an agent opened a task for another: %v", err)
	}
	tr, err := bc.OpenTask(ctx, TaskRequest{Intent: "reconcile invoices", Budget: 5, Delegation: 1,
		Allow: scopeOf(t, `[{"tool": "files.read_file", "args": {"path": {"path_within": ["/data"]}}}, {"tool": "search.*"}]`)})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Task.Agent != billing.ID.String() || tr.Task.Requester != billing.ID.String() {
		t.Fatalf("task = %+v", tr.Task)
	}
	jkt, _ := identity.Thumbprint(billing.Key.Public())
	decide := func(agent, tok, tool, args string, thumb string) string {
		t.Helper()
		d, err := h.admin.Authorize(ctx, AuthorizeRequest{Agent: agent, Grant: tok, Tool: tool, Arguments: json.RawMessage(args),
			Labels: []string{"reads"}, Proof: Proof{MTLSThumbprint: thumb}})
		if err != nil {
			t.Fatal(err)
		}
		if d.Allow != (d.Code == "allow") || len(d.Reasons) == 0 {
			t.Fatalf("incoherent decision %+v", d)
		}
		return d.Code
	}
	for _, c := range []struct{ tool, args, want string }{
		{"files.read_file", `{"path": "/data/q3.csv"}`, "allow"},
		{"files.read_file", `{"path": "/data/../etc/shadow"}`, "constraint_violated"},
		{"files.write_file", `{"path": "/data/x"}`, "tool_not_granted"},
		{"search.web", `{"q": "x"}`, "allow"},
	} {
		if got := decide(billing.ID.String(), tr.Grant, c.tool, c.args, jkt); got != c.want {
			t.Errorf("%s %s: %s, want %s", c.tool, c.args, got, c.want)
		}
	}
	// The grant is useless to another agent, and without proof of the key.
	hjkt, _ := identity.Thumbprint(helper.Key.Public())
	if got := decide(helper.ID.String(), tr.Grant, "search.web", `{}`, hjkt); got != "grant_wrong_agent" {
		t.Errorf("stolen grant: %s", got)
	}
	if got := decide(billing.ID.String(), tr.Grant, "search.web", `{}`, ""); got != "binding_unproven" {
		t.Errorf("unbound use: %s", got)
	}

	// Delegation narrows; the helper cannot see the parent task.
	child, err := bc.DelegateTask(ctx, tr.Task.ID, DelegateRequest{Grant: tr.Grant, To: "helper-bot", Intent: "look up one file",
		Budget: 2, Allow: scopeOf(t, `[{"tool": "files.read_file"}]`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bc.DelegateTask(ctx, tr.Task.ID, DelegateRequest{Grant: tr.Grant, To: "helper-bot", Intent: "x",
		Allow: scopeOf(t, `[{"tool": "mail.send"}]`)}); apiCode(err) != "delegation_widening" {
		t.Fatalf("widening delegation: %v", err)
	}
	if _, err := hc.GetTask(ctx, tr.Task.ID); apiCode(err) != "task_unknown" {
		t.Fatalf("an agent read another's task: %v", err)
	}
	if got := decide(helper.ID.String(), child.Grant, "files.read_file", `{"path": "/data/a"}`, hjkt); got != "allow" {
		t.Fatalf("child call: %s", got)
	}
	if got := decide(helper.ID.String(), child.Grant, "files.read_file", `{"path": "/home/x"}`, hjkt); got != "constraint_violated" {
		t.Fatalf("child call outside the parent's constraint: %s", got)
	}

	// Completing the parent ends the child's access too.
	if _, err := bc.CompleteTask(ctx, tr.Task.ID); err != nil {
		t.Fatal(err)
	}
	if got := decide(helper.ID.String(), child.Grant, "files.read_file", `{"path": "/data/a"}`, hjkt); got != "ancestor_revoked" {
		t.Fatalf("child after parent completed: %s", got)
	}
	if got := decide(billing.ID.String(), tr.Grant, "search.web", `{}`, jkt); got != "task_completed" {
		t.Fatalf("parent after completion: %s", got)
	}

	// Disabling an agent revokes its grants (and identity refuses it).
	tr2, err := h.admin.OpenTask(ctx, TaskRequest{Agent: "helper-bot", Intent: "y", Allow: scopeOf(t, `[{"tool": "search.*"}]`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.admin.DisableAgent(ctx, "helper-bot"); err != nil {
		t.Fatal(err)
	}
	if got := decide(helper.ID.String(), tr2.Grant, "search.web", `{}`, hjkt); got != "identity_disabled" {
		t.Fatalf("disabled agent: %s", got)
	}
	task2, err := h.admin.GetTask(ctx, tr2.Task.ID)
	if err != nil || task2.Status != grant.StatusRevoked || !strings.Contains(task2.StatusReason, "disabled") {
		t.Fatalf("disabled agent's task = %+v %v", task2, err)
	}
	if _, err := h.admin.EnableAgent(ctx, "helper-bot"); err != nil {
		t.Fatal(err)
	}
	if got := decide(helper.ID.String(), tr2.Grant, "search.web", `{}`, hjkt); got != "grant_revoked" {
		t.Fatalf("re-enabling an agent revived its grant: %s", got)
	}

	// Agents list only their own tasks; agents cannot revoke or apply policy.
	mine, err := bc.ListTasks(ctx, "", false)
	if err != nil || len(mine) != 1 || mine[0].ID != tr.Task.ID {
		t.Fatalf("billing-bot sees %+v, %v", mine, err)
	}
	if _, err := bc.RevokeTask(ctx, tr.Task.ID, ""); apiCode(err) != "identity_wrong_role" {
		t.Fatalf("agent revoked a task: %v", err)
	}
	if _, err := bc.ApplyPolicy(ctx, PolicyRequest{Source: "permit (principal, action, resource);"}); apiCode(err) != "identity_wrong_role" {
		t.Fatalf("agent applied policy: %v", err)
	}
	all, err := h.admin.ListTasks(ctx, "", false)
	if err != nil || len(all) != 3 {
		t.Fatalf("operator sees %d tasks, %v", len(all), err)
	}
	vs, err := h.admin.ListPolicies(ctx)
	if err != nil || len(vs) != 1 || !vs[0].Active {
		t.Fatalf("policies = %+v %v", vs, err)
	}
}
