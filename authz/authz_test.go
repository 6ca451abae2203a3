package authz

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/policy"
	"github.com/warden-run/warden/store"
	"github.com/warden-run/warden/tier"
)

var ctx = context.Background()

const testPolicies = `
@id("billing-may-use-files-and-search")
permit (principal == Agent::"billing-bot", action == Action::"call", resource)
when { resource.server == "files" || resource.server == "search" };

@id("nothing-destructive")
forbid (principal, action == Action::"call", resource)
when { resource.labels.contains("destructive") };

@id("no-secrets-dir")
forbid (principal, action == Action::"call", resource)
when { context.args has path && context.args.path like "/data/secret*" };
`

type fixture struct {
	point  *Point
	grants *grant.Service
	sink   *events.Recorder
	caller *identity.Caller
}

func newFixture(t testing.TB, policies string) *fixture {
	t.Helper()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "warden.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	sink := &events.Recorder{}
	td := spiffeid.RequireTrustDomainFromString("example.org")
	gs, err := grant.NewService(ctx, grant.Settings{TrustDomain: td, Tier: tier.Foundation}, db, key, nil, sink, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := gs.Load(ctx); err != nil {
		t.Fatal(err)
	}
	set, err := policy.Compile("test.cedar", []byte(policies))
	if err != nil {
		t.Fatal(err)
	}
	ak, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jkt, _ := identity.Thumbprint(ak.Public())
	rec := &identity.Record{ID: spiffeid.RequireFromString("spiffe://example.org/agent/billing-bot"), Role: identity.RoleAgent, Name: "billing-bot",
		Owner: "ops@example.org", Model: "claude-sonnet", Tier: tier.Foundation, Status: identity.StatusActive, KeyThumbprint: jkt}
	caller := &identity.Caller{ID: rec.ID, Role: identity.RoleAgent, Name: rec.Name, Method: "x509-svid", KeyThumbprint: jkt, Record: rec}
	return &fixture{point: New(gs, policy.NewEngine(set), sink), grants: gs, sink: sink, caller: caller}
}

func (f *fixture) grant(t testing.TB, scope string, budget int) string {
	t.Helper()
	var sc grant.Scope
	if err := json.Unmarshal([]byte(scope), &sc); err != nil {
		t.Fatal(err)
	}
	_, tok, err := f.grants.Open(ctx, grant.OpenRequest{Grantee: f.caller.Record, Requester: "op", Intent: "reconcile Q3 invoices", Scope: sc, Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (f *fixture) req(tok, tool, args string, labels ...string) Request {
	server, name, _ := strings.Cut(tool, ".")
	return Request{
		Call: grant.Call{Agent: f.caller, Token: tok, Tool: tool, Args: json.RawMessage(args), MTLS: true},
		Tool: policy.Tool{Server: server, Name: name, Labels: labels},
	}
}

func TestBothGrantAndPolicyMustPermit(t *testing.T) {
	f := newFixture(t, testPolicies)
	tok := f.grant(t, `[{"tool": "files.read_file", "args": {"path": {"path_within": ["/data"]}}}, {"tool": "files.delete"}, {"tool": "mail.*"}]`, 2)
	cases := []struct {
		name, tool, args string
		labels           []string
		allow            bool
		code             string
		policy           string
	}{
		{"both permit", "files.read_file", `{"path": "/data/q3.csv"}`, []string{"reads"}, true, CodeAllow, "billing-may-use-files-and-search"},
		{"policy forbids by arguments", "files.read_file", `{"path": "/data/secrets.txt"}`, []string{"reads"}, false, "policy_forbid", "no-secrets-dir"},
		{"policy forbids by label", "files.delete", `{}`, []string{"destructive"}, false, "policy_forbid", "nothing-destructive"},
		{"labels default to all five", "files.delete", `{}`, nil, false, "policy_forbid", "nothing-destructive"},
		{"grant refuses the arguments", "files.read_file", `{"path": "/etc/shadow"}`, []string{"reads"}, false, "constraint_violated", ""},
		{"grant refuses the tool", "search.web", `{}`, []string{"reads"}, false, "tool_not_granted", ""},
		{"granted but no policy permits", "mail.send", `{}`, []string{"egress"}, false, "policy_no_permit", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := f.point.Authorize(ctx, f.req(tok, c.tool, c.args, c.labels...))
			if d.Allow != c.allow || d.Code != c.code {
				t.Fatalf("decision = %v %s, want %v %s: %+v", d.Allow, d.Code, c.allow, c.code, d.Reasons)
			}
			if c.policy != "" && (len(d.Policies) == 0 || d.Policies[0] != c.policy) {
				t.Fatalf("policies = %v, want %s", d.Policies, c.policy)
			}
			if c.allow && (d.GrantEntry == nil || *d.GrantEntry != 0 || d.Task == "") {
				t.Fatalf("allowed decision does not name its grant entry: %+v", d)
			}
		})
	}
	// Denied calls did not spend the budget of 2: two more allowed calls fit.
	for i := 0; i < 1; i++ {
		if d := f.point.Authorize(ctx, f.req(tok, "files.read_file", `{"path": "/data/a"}`, "reads")); !d.Allow {
			t.Fatalf("budget spent by denied calls: %+v", d)
		}
	}
	if d := f.point.Authorize(ctx, f.req(tok, "files.read_file", `{"path": "/data/a"}`, "reads")); d.Code != "budget_exhausted" {
		t.Fatalf("third allowed call: %+v", d)
	}
	// Every decision was recorded as an OCSF API Activity with the
	// Security Control profile.
	evs := f.sink.Events()
	if len(evs) < len(cases)+2 {
		t.Fatalf("%d events for %d decisions", len(evs), len(cases)+2)
	}
	last := evs[len(evs)-1]
	if last.ClassUID != events.ClassAPIActivity || last.ActionID != events.ActionDenied || last.Warden.Reason != "budget_exhausted" || last.Warden.Task == "" || last.Warden.Tool != "files.read_file" {
		t.Fatalf("last event = %+v %+v", last, last.Warden)
	}
	first := evs[1] // evs[0] is the task being opened
	if first.ActionID != events.ActionAllowed || first.Policy == nil || first.Policy.UID != "billing-may-use-files-and-search" {
		t.Fatalf("allowed event = %+v", first)
	}
}

func TestUnrecordedDecisionsAreDenied(t *testing.T) {
	f := newFixture(t, testPolicies)
	tok := f.grant(t, `[{"tool": "files.*"}]`, 10)
	f.sink.Err = errors.New("disk full")
	d := f.point.Authorize(ctx, f.req(tok, "files.read_file", `{}`, "reads"))
	if d.Allow || d.Code != CodeUnrecorded {
		t.Fatalf("decision = %+v", d)
	}
}

func TestMismatchedToolIsRefused(t *testing.T) {
	f := newFixture(t, testPolicies)
	tok := f.grant(t, `[{"tool": "files.*"}]`, 10)
	r := f.req(tok, "files.read_file", `{}`)
	r.Tool = policy.Tool{Server: "search", Name: "web"}
	if d := f.point.Authorize(ctx, r); d.Allow {
		t.Fatal("a request whose grant tool and policy tool differ was allowed")
	}
}

// policies generates n policies of which one permits billing-bot on files
// and a tenth are forbids that do not apply to it.
func policies(n int) string {
	var b strings.Builder
	b.WriteString(testPolicies)
	for i := 3; i < n; i++ {
		if i%10 == 0 {
			fmt.Fprintf(&b, "@id(\"forbid-%d\")\nforbid (principal == Agent::\"agent-%d\", action == Action::\"call\", resource);\n", i, i)
		} else {
			fmt.Fprintf(&b, "@id(\"permit-%d\")\npermit (principal == Agent::\"agent-%d\", action == Action::\"call\", resource == Tool::\"srv%d.tool\")\nwhen { context.args has amount && context.args.amount < %d };\n", i, i, i, i)
		}
	}
	return b.String()
}

func benchAuthorize(b *testing.B, n int, cold bool) {
	f := newFixture(b, policies(n))
	f.point.sink = events.Discard{}
	tok := f.grant(b, `[{"tool": "files.read_file", "args": {"path": {"path_within": ["/data"]}}}]`, grant.MaxBudget)
	r := f.req(tok, "files.read_file", `{"path": "/data/q3.csv"}`, "reads")
	if d := f.point.Authorize(ctx, r); !d.Allow {
		b.Fatalf("benchmark call denied: %+v", d)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if cold {
			f.grants.Verifier().Forget()
		}
		if d := f.point.Authorize(ctx, r); !d.Allow {
			b.Fatal(d.Code)
		}
	}
}

// BenchmarkAuthorizeWarm is the full decision with the grant verified once
// and cached: revocation snapshot, binding, constraints, budget, and Cedar
// over 100 policies. Target: under 20 µs.
func BenchmarkAuthorizeWarm(b *testing.B) { benchAuthorize(b, 100, false) }

// BenchmarkAuthorizeCold is the same decision verifying the grant's
// signature every time (the first call of a grant).
func BenchmarkAuthorizeCold(b *testing.B) { benchAuthorize(b, 100, true) }

// BenchmarkAuthorize2000Policies is the warm decision with 2,000 policies:
// the policy index evaluates only those that can apply.
func BenchmarkAuthorize2000Policies(b *testing.B) { benchAuthorize(b, 2000, false) }
