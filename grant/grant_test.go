package grant

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/warden-run/warden/identity"
)

const filesScope = `[{"tool": "files.read_file", "args": {"path": {"path_within": ["/data"]}}}, {"tool": "search.*"}]`

func TestGrantAuthorizesExactlyItsScope(t *testing.T) {
	e := newEnv(t)
	a := newAgent(t, "billing-bot")
	task, tok := e.grant(t, a, filesScope, 10, 0)
	if task.Status != StatusOpen || task.Budget != 10 || task.ExpiresAt.Sub(e.clock.now()) != 15*time.Minute {
		t.Fatalf("task = %+v", task)
	}
	if err := e.call(a, tok, "files.read_file", `{"path": "/data/q3.csv"}`); err != nil {
		t.Fatal(err)
	}
	if err := e.call(a, tok, "search.web", `{"q": "x"}`); err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.call(a, tok, "files.write_file", `{"path": "/data/x"}`), CodeToolNotGranted)
	wantCode(t, e.call(a, tok, "files.read_file", `{"path": "/etc/shadow"}`), CodeConstraint)
	// The grant's claims are what the issue lists.
	g, err := e.svc.Verifier().Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if g.Issuer != "spiffe://example.org" || g.Subject != a.rec.ID.String() || !g.Audience.Contains("spiffe://example.org") ||
		g.Task != task.ID || g.ID == "" || g.Cnf.JKT != a.rec.KeyThumbprint || g.Budget != 10 || g.Depth != 0 || len(g.Scope) != 2 {
		t.Fatalf("claims = %+v", g.Claims)
	}
}

// Every way a call can be refused, each with its own stable code.
func TestRefusalsHaveSpecificCodes(t *testing.T) {
	e := newEnv(t)
	a, b := newAgent(t, "a"), newAgent(t, "b")
	_, tok := e.grant(t, a, filesScope, 3, 0)
	okArgs := `{"path": "/data/x"}`
	g, _ := e.svc.Verifier().Verify(tok)
	claims := g.Claims
	kid := e.svc.auth.KeyID()

	expired := claims
	expired.Expiry = jwt.NewNumericDate(e.clock.now().Add(-time.Minute))
	future := claims
	future.NotBefore = jwt.NewNumericDate(e.clock.now().Add(time.Hour))
	otherAud := claims
	otherAud.Audience = jwt.Audience{"spiffe://other.example"}
	ghost := claims
	ghost.Task = "t_never_opened"
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"/data"`, `"/"`, 1))) + "." + parts[2]
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"warden-grant+jwt"}`)) + "." + parts[1] + "."
	// A JWT-SVID is signed with ES256 by the JWT-SVID key and typed JWT:
	// whatever its claims, it is not a grant.
	jwtSVID := forge(t, b.key, jose.ES256, kid, "JWT", claims)
	sameKeyWrongTyp := forge(t, e.key, jose.EdDSA, kid, "JWT", claims)

	cases := []struct {
		name string
		call Call
		code Code
	}{
		{"no grant", Call{Agent: a.caller(), Tool: "files.read_file", MTLS: true}, CodeMissing},
		{"garbage", Call{Agent: a.caller(), Token: "not.a.token", Tool: "files.read_file", MTLS: true}, CodeMalformed},
		{"expired", Call{Agent: a.caller(), Token: forge(t, e.key, jose.EdDSA, kid, TokenType, expired), Tool: "files.read_file", Args: []byte(okArgs), MTLS: true}, CodeExpired},
		{"not yet valid", Call{Agent: a.caller(), Token: forge(t, e.key, jose.EdDSA, kid, TokenType, future), Tool: "files.read_file", Args: []byte(okArgs), MTLS: true}, CodeNotYetValid},
		{"wrong audience", Call{Agent: a.caller(), Token: forge(t, e.key, jose.EdDSA, kid, TokenType, otherAud), Tool: "files.read_file", Args: []byte(okArgs), MTLS: true}, CodeWrongAudience},
		{"tampered scope", Call{Agent: a.caller(), Token: tampered, Tool: "files.read_file", Args: []byte(`{"path": "/etc/x"}`), MTLS: true}, CodeBadSignature},
		{"alg none", Call{Agent: a.caller(), Token: none, Tool: "files.read_file", MTLS: true}, CodeAlg},
		{"signed by another key", Call{Agent: a.caller(), Token: forge(t, otherKey, jose.EdDSA, "other", TokenType, claims), Tool: "files.read_file", MTLS: true}, CodeUntrusted},
		{"another key claiming the grant kid", Call{Agent: a.caller(), Token: forge(t, otherKey, jose.EdDSA, kid, TokenType, claims), Tool: "files.read_file", MTLS: true}, CodeBadSignature},
		{"a JWT-SVID offered as a grant", Call{Agent: a.caller(), Token: jwtSVID, Tool: "files.read_file", MTLS: true}, CodeAlg},
		{"grant key, JWT typ", Call{Agent: a.caller(), Token: sameKeyWrongTyp, Tool: "files.read_file", MTLS: true}, CodeWrongType},
		{"stolen by another agent", Call{Agent: b.caller(), Token: tok, Tool: "files.read_file", Args: []byte(okArgs), MTLS: true}, CodeWrongAgent},
		{"bearer without proof", Call{Agent: a.caller(), Token: tok, Tool: "files.read_file", Args: []byte(okArgs)}, CodeBindingUnproven},
		{"unknown task", Call{Agent: a.caller(), Token: forge(t, e.key, jose.EdDSA, kid, TokenType, ghost), Tool: "files.read_file", Args: []byte(okArgs), MTLS: true}, CodeTaskUnknown},
		{"arguments of the wrong type", Call{Agent: a.caller(), Token: tok, Tool: "files.read_file", Args: []byte(`{"path": 7}`), MTLS: true}, CodeConstraint},
		{"arguments not an object", Call{Agent: a.caller(), Token: tok, Tool: "files.read_file", Args: []byte(`["/data/x"]`), MTLS: true}, CodeArgsInvalid},
		// search.* constrains no argument: they are still refused when not an object.
		{"unconstrained tool, arguments not an object", Call{Agent: a.caller(), Token: tok, Tool: "search.query", Args: []byte(`["q"]`), MTLS: true}, CodeArgsInvalid},
		{"unconstrained tool, arguments not JSON", Call{Agent: a.caller(), Token: tok, Tool: "search.query", Args: []byte(`{"q": 1} {}`), MTLS: true}, CodeArgsInvalid},
		{"unknown tool", Call{Agent: a.caller(), Token: tok, Tool: "shell.exec", Args: []byte(`{}`), MTLS: true}, CodeToolNotGranted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantCode(t, e.callWith(e.svc, c.call), c.code)
		})
	}

	// A stolen grant with the right agent name but another key (the thief
	// holds a different X.509-SVID key) cannot prove the binding.
	thief := a.caller()
	thief.KeyThumbprint = b.rec.KeyThumbprint
	wantCode(t, e.callWith(e.svc, Call{Agent: thief, Token: tok, Tool: "files.read_file", Args: []byte(okArgs), MTLS: true}), CodeBindingUnproven)

	// Budget: 3 calls, then refused with its own reason; refused calls did
	// not consume it.
	for i := 0; i < 3; i++ {
		if err := e.call(a, tok, "files.read_file", okArgs); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	wantCode(t, e.call(a, tok, "files.read_file", okArgs), CodeBudgetExhausted)
}

func TestRevocationAndCompletionTakeEffectOnTheNextCall(t *testing.T) {
	e := newEnv(t)
	a := newAgent(t, "a")
	task, tok := e.grant(t, a, filesScope, 100, 0)
	if err := e.call(a, tok, "search.x", `{}`); err != nil {
		t.Fatal(err) // the verified grant is now cached
	}
	var got []Revocation
	e.svc.OnRevoke(func(_ context.Context, r Revocation) { got = append(got, r) })
	if _, err := e.svc.Complete(ctx, "op", task.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.call(a, tok, "search.x", `{}`), CodeTaskCompleted)
	if len(got) != 1 || got[0].Tasks[0] != task.ID {
		t.Fatalf("revocation hooks saw %+v", got)
	}
	// Completing again is harmless.
	if _, err := e.svc.Complete(ctx, "op", task.ID); err != nil {
		t.Fatal(err)
	}

	task2, tok2 := e.grant(t, a, filesScope, 100, 0)
	if _, err := e.svc.Revoke(ctx, "op", task2.ID, "suspicious"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.call(a, tok2, "search.x", `{}`), CodeRevoked)

	// Disabling the agent revokes every grant it holds.
	_, tok3 := e.grant(t, a, filesScope, 100, 0)
	_, tok4 := e.grant(t, a, filesScope, 100, 0)
	n, err := e.svc.RevokeAgent(ctx, "op", a.rec.ID.String(), "agent disabled")
	if err != nil || n != 2 {
		t.Fatalf("RevokeAgent = %d, %v", n, err)
	}
	wantCode(t, e.call(a, tok3, "search.x", `{}`), CodeRevoked)
	wantCode(t, e.call(a, tok4, "search.x", `{}`), CodeRevoked)

	// After a restart the revocations still hold.
	restarted := e.open(t, nil)
	wantCode(t, e.callWith(restarted, Call{Agent: a.caller(), Token: tok2, Tool: "search.x", Args: []byte(`{}`), MTLS: true}), CodeRevoked)
	wantCode(t, e.callWith(restarted, Call{Agent: a.caller(), Token: tok, Tool: "search.x", Args: []byte(`{}`), MTLS: true}), CodeTaskCompleted)
}

func TestDelegationOnlyNarrows(t *testing.T) {
	e := newEnv(t)
	parent, child, grandchild := newAgent(t, "parent"), newAgent(t, "child"), newAgent(t, "grandchild")
	pTask, pTok := e.grant(t, parent, `[{"tool": "files.*", "args": {"path": {"path_within": ["/data"]}}}, {"tool": "mail.send"}]`, 20, 2)

	delegate := func(from *agent, tok string, to *agent, js string, budget, depth int) (*Task, string, error) {
		return e.svc.Delegate(ctx, DelegateRequest{Caller: from.caller(), ParentToken: tok, To: to.rec, Intent: "sub-task",
			Scope: scope(t, js), Budget: budget, Delegation: depth})
	}
	// Widening is refused at delegation time.
	_, _, err := delegate(parent, pTok, child, `[{"tool": "shell.exec"}]`, 5, 0)
	wantCode(t, err, CodeDelegationWidening)
	_, _, err = delegate(parent, pTok, child, `[{"tool": "*"}]`, 5, 0)
	wantCode(t, err, CodeDelegationWidening)
	_, _, err = delegate(parent, pTok, child, `[{"tool": "files.read_file"}]`, 50, 0)
	wantCode(t, err, CodeDelegationWidening) // more calls than the parent has
	_, _, err = delegate(parent, pTok, child, `[{"tool": "files.read_file"}]`, 5, 2)
	wantCode(t, err, CodeDelegationWidening) // deeper than the parent allows
	_, _, err = delegate(child, pTok, grandchild, `[{"tool": "files.read_file"}]`, 5, 0)
	wantCode(t, err, CodeWrongAgent) // only the holder may delegate
	// Every refusal is recorded, against the parent task, for detection.
	if refused := e.sink.Find(string(CodeDelegationWidening)); len(refused) != 4 || refused[0].Warden.Task != pTask.ID {
		t.Fatalf("refused delegations recorded: %d", len(refused))
	}
	if len(e.sink.Find(string(CodeWrongAgent))) != 1 {
		t.Fatal("a delegation with another agent's grant was not recorded")
	}

	// The child asks for a looser constraint than the parent's: at call
	// time the parent's still applies.
	cTask, cTok, err := delegate(parent, pTok, child, `[{"tool": "files.read_file", "args": {"path": {"path_within": ["/"]}}}]`, 5, 1)
	if err != nil {
		t.Fatal(err)
	}
	if cTask.Parent != pTask.ID || !cTask.ExpiresAt.Equal(pTask.ExpiresAt) && cTask.ExpiresAt.After(pTask.ExpiresAt) {
		t.Fatalf("child task = %+v", cTask)
	}
	cg, _ := e.svc.Verifier().Verify(cTok)
	if cg.Act == nil || cg.Act.Sub != parent.rec.ID.String() || len(cg.Parents) != 1 || cg.Parents[0].Task != pTask.ID {
		t.Fatalf("child grant does not record the actor chain: %+v", cg.Claims)
	}
	if err := e.call(child, cTok, "files.read_file", `{"path": "/data/a"}`); err != nil {
		t.Fatal(err)
	}
	err = e.call(child, cTok, "files.read_file", `{"path": "/etc/passwd"}`)
	wantCode(t, err, CodeConstraint)
	if !strings.Contains(err.Error(), "ancestor task "+pTask.ID) {
		t.Errorf("refusal does not name the ancestor: %v", err)
	}
	// The child's calls count against the parent's budget too.
	before, _ := e.svc.remaining(ctx, cg.Parents[0].JTI)

	gTask, gTok, err := delegate(child, cTok, grandchild, `[{"tool": "files.read_file"}]`, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = delegate(grandchild, gTok, child, `[{"tool": "files.read_file"}]`, 1, 0)
	wantCode(t, err, CodeDelegationDepth)
	if err := e.call(grandchild, gTok, "files.read_file", `{"path": "/data/b"}`); err != nil {
		t.Fatal(err)
	}
	// The grandchild's own entry constrains nothing; its ancestors' do.
	wantCode(t, e.call(grandchild, gTok, "files.read_file", `{"path": "/etc/passwd"}`), CodeConstraint)
	after, _ := e.svc.remaining(ctx, cg.Parents[0].JTI)
	if after != before-1 {
		t.Errorf("grandchild's call did not count against the root's budget: %d -> %d", before, after)
	}

	// Revoking the root denies every descendant's next call.
	if _, err := e.svc.Revoke(ctx, "op", pTask.ID, "incident"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.call(child, cTok, "files.read_file", `{"path": "/data/a"}`), CodeAncestorRevoked)
	wantCode(t, e.call(grandchild, gTok, "files.read_file", `{"path": "/data/b"}`), CodeAncestorRevoked)
	got, _ := e.svc.Get(ctx, gTask.ID)
	if got.Status != StatusRevoked || !strings.Contains(got.StatusReason, pTask.ID) {
		t.Errorf("grandchild task = %+v", got)
	}
}

func TestDPoPBindsBearerUse(t *testing.T) {
	e := newEnv(t)
	a, b := newAgent(t, "a"), newAgent(t, "b")
	_, tok := e.grant(t, a, `[{"tool": "search.*"}]`, 100, 0)
	jwtCaller := a.caller()
	jwtCaller.Method = "jwt-svid"
	const u = "https://gw.example.org/mcp"
	now := e.clock.now()
	call := func(proof, method, url string) error {
		return e.callWith(e.svc, Call{Agent: jwtCaller, Token: tok, Tool: "search.q", Args: []byte(`{}`), DPoP: proof, Method: method, URL: url})
	}
	p1 := dpop(t, a.key, "POST", u, tok, now, "j1")
	if err := call(p1, "POST", u+"?x=1"); err != nil {
		t.Fatalf("good proof refused: %v", err)
	}
	wantCode(t, call(p1, "POST", u), CodeDPoPReplayed)
	wantCode(t, call("", "POST", u), CodeBindingUnproven)
	wantCode(t, call(dpop(t, b.key, "POST", u, tok, now, "j2"), "POST", u), CodeBindingUnproven)
	wantCode(t, call(dpop(t, a.key, "GET", u, tok, now, "j3"), "POST", u), CodeDPoPInvalid)
	wantCode(t, call(dpop(t, a.key, "POST", "https://evil.example/mcp", tok, now, "j4"), "POST", u), CodeDPoPInvalid)
	wantCode(t, call(dpop(t, a.key, "POST", u, "another-token", now, "j5"), "POST", u), CodeDPoPInvalid)
	wantCode(t, call(dpop(t, a.key, "POST", u, tok, now.Add(-10*time.Minute), "j6"), "POST", u), CodeDPoPInvalid)
	wantCode(t, call("x.y.z", "POST", u), CodeDPoPInvalid)
}

func TestBudgetSurvivesARestart(t *testing.T) {
	e := newEnv(t)
	a := newAgent(t, "a")
	_, tok := e.grant(t, a, `[{"tool": "search.q", "budget": 2}, {"tool": "search.*"}]`, 20, 0)
	for i := 0; i < 3; i++ {
		if err := e.call(a, tok, "search.x", `{}`); err != nil {
			t.Fatal(err)
		}
	}
	// Per-tool budget: the first entry allows search.q twice; the second
	// entry does not name a budget but search.q matches the first entry.
	for i := 0; i < 2; i++ {
		if err := e.call(a, tok, "search.q", `{}`); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, e.call(a, tok, "search.q", `{}`), CodeToolBudget)
	// A restart does not refill: calls leased before it count as used.
	s2 := e.open(t, nil)
	used := 0
	for {
		err := e.callWith(s2, Call{Agent: a.caller(), Token: tok, Tool: "search.x", Args: []byte(`{}`), MTLS: true})
		if err != nil {
			wantCode(t, err, CodeBudgetExhausted)
			break
		}
		used++
	}
	if used > 20-5 {
		t.Fatalf("after a restart the grant made %d more calls; at most %d remained", used, 20-5)
	}
}

type forbidPolicy struct{ tool string }

func (p forbidPolicy) Precheck(_ context.Context, _ *identity.Record, _ TaskRef, tool string) error {
	if tool == p.tool {
		return errorf(CodePolicyForbids, "policy forbids %s", tool)
	}
	return nil
}

func (forbidPolicy) MayDelegate(context.Context, *identity.Record, *identity.Record, TaskRef) error {
	return nil
}

func TestMintRefusals(t *testing.T) {
	e := newEnv(t)
	svc := e.open(t, forbidPolicy{tool: "shell.exec"})
	a := newAgent(t, "a")
	disabled := newAgent(t, "d")
	disabled.rec.Status = identity.StatusDisabled
	unenrolled := newAgent(t, "u")
	unenrolled.rec.KeyThumbprint = ""
	cases := []struct {
		name string
		req  OpenRequest
		code Code
	}{
		{"policy forbids", OpenRequest{Grantee: a.rec, Intent: "x", Scope: scope(t, `[{"tool": "shell.exec"}]`)}, CodePolicyForbids},
		{"disabled agent", OpenRequest{Grantee: disabled.rec, Intent: "x", Scope: scope(t, `[{"tool": "a.b"}]`)}, CodeAgentInactive},
		{"agent without a key", OpenRequest{Grantee: unenrolled.rec, Intent: "x", Scope: scope(t, `[{"tool": "a.b"}]`)}, CodeAgentInactive},
		{"ttl over the tier ceiling", OpenRequest{Grantee: a.rec, Intent: "x", TTL: 9 * time.Hour, Scope: scope(t, `[{"tool": "a.b"}]`)}, CodeInvalidInput},
		{"no intent", OpenRequest{Grantee: a.rec, Scope: scope(t, `[{"tool": "a.b"}]`)}, CodeInvalidInput},
		{"budget too large", OpenRequest{Grantee: a.rec, Intent: "x", Budget: MaxBudget + 1, Scope: scope(t, `[{"tool": "a.b"}]`)}, CodeInvalidInput},
		{"entry budget over grant budget", OpenRequest{Grantee: a.rec, Intent: "x", Budget: 5, Scope: scope(t, `[{"tool": "a.b", "budget": 6}]`)}, CodeInvalidInput},
		{"depth over the tier", OpenRequest{Grantee: a.rec, Intent: "x", Delegation: 9, Scope: scope(t, `[{"tool": "a.b"}]`)}, CodeInvalidInput},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := svc.Open(ctx, c.req)
			wantCode(t, err, c.code)
		})
	}
	// Glob entries are left to call time.
	if _, _, err := svc.Open(ctx, OpenRequest{Grantee: a.rec, Intent: "x", Scope: scope(t, `[{"tool": "shell.*"}]`)}); err != nil {
		t.Fatal(err)
	}
}

func TestNothingIsMintedUnrecorded(t *testing.T) {
	e := newEnv(t)
	a := newAgent(t, "a")
	e.sink.Err = errors.New("disk full")
	if _, _, err := e.svc.Open(ctx, OpenRequest{Grantee: a.rec, Intent: "x", Scope: scope(t, `[{"tool": "a.b"}]`)}); err == nil {
		t.Fatal("minted without a record")
	}
	e.sink.Err = nil
	tasks, _ := e.svc.List(ctx, "", false, 0)
	if len(tasks) != 0 {
		t.Fatalf("%d tasks stored without a record", len(tasks))
	}
}

func TestUnloadedStateFailsClosed(t *testing.T) {
	e := newEnv(t)
	a := newAgent(t, "a")
	_, tok := e.grant(t, a, `[{"tool": "a.b"}]`, 5, 0)
	cold, err := NewService(ctx, Settings{TrustDomain: e.td}, e.db, e.key, nil, e.sink, nil, e.clock.now)
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.callWith(cold, Call{Agent: a.caller(), Token: tok, Tool: "a.b", MTLS: true}), CodeStateUnavailable)
}

func TestExpiryEndsTheGrant(t *testing.T) {
	e := newEnv(t)
	a := newAgent(t, "a")
	_, tok := e.grant(t, a, `[{"tool": "a.b"}]`, 5, 0)
	if err := e.call(a, tok, "a.b", ""); err != nil {
		t.Fatal(err)
	}
	e.clock.add(16 * time.Minute)
	wantCode(t, e.call(a, tok, "a.b", ""), CodeExpired)
}

// TestTaskLivesWhatItWasGranted: a task's recorded lifetime is the one it was
// granted, even when the clock crosses a second boundary while the grant is
// signed and stored (the task used to be dated by a second clock reading, so a
// 30-minute task opened at hh:mm:ss.9 read as living 29m59s).
func TestTaskLivesWhatItWasGranted(t *testing.T) {
	e := newEnv(t)
	e.clock.add(900 * time.Millisecond)
	e.clock.tick(400 * time.Millisecond) // every reading crosses or nears a second boundary
	parent, child := newAgent(t, "parent"), newAgent(t, "child")
	pTask, pTok, err := e.svc.Open(ctx, OpenRequest{Grantee: parent.rec, Requester: "spiffe://example.org/admin/op", Intent: "long task",
		Scope: scope(t, `[{"tool": "files.*"}]`), TTL: 30 * time.Minute, Budget: 10, Delegation: 1})
	if err != nil {
		t.Fatal(err)
	}
	cTask, _, err := e.svc.Delegate(ctx, DelegateRequest{Caller: parent.caller(), ParentToken: pTok, To: child.rec, Intent: "sub-task",
		Scope: scope(t, `[{"tool": "files.read_file"}]`), TTL: 10 * time.Minute, Budget: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		task *Task
		ttl  time.Duration
	}{{pTask, 30 * time.Minute}, {cTask, 10 * time.Minute}} {
		stored, err := e.svc.Get(ctx, c.task.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, got := range []*Task{c.task, stored} {
			// Expiry is kept to the second (a JWT NumericDate), creation to
			// the nanosecond: the lifetime is the grant's less under a second.
			if l := got.ExpiresAt.Sub(got.CreatedAt); l <= c.ttl-time.Second || l > c.ttl {
				t.Errorf("task %s lives %v (created %s, expires %s); granted %v", got.ID, l,
					got.CreatedAt.Format(time.StampMilli), got.ExpiresAt.Format(time.StampMilli), c.ttl)
			}
		}
	}
}
