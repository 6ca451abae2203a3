package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// policyGen writes random policies over a small universe of entities, so
// that scopes collide often: every kind of scope (==, in, is, is-in, sets of
// actions, none) and conditions over attributes, arguments (including ones
// that fail to evaluate) and session facts.
type policyGen struct{ r *rand.Rand }

func (g policyGen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

func (g policyGen) principal() string {
	a, gr := fmt.Sprintf(`Agent::"a%d"`, g.r.IntN(6)), fmt.Sprintf(`Group::"g%d"`, g.r.IntN(3))
	return g.pick("principal", "principal == "+a, "principal in "+gr, "principal in "+a,
		"principal is Agent", "principal is Agent in "+gr)
}

func (g policyGen) action() (string, []Action) {
	switch g.r.IntN(6) {
	case 0:
		return "action", []Action{Call, Read, Write, Delegate}
	case 1, 2:
		return `action == Action::"call"`, []Action{Call}
	case 3:
		return `action in [Action::"read", Action::"write"]`, []Action{Read, Write}
	case 4:
		return `action == Action::"delegate"`, []Action{Delegate}
	}
	return `action in [Action::"call", Action::"read"]`, []Action{Call, Read}
}

func (g policyGen) resource(actions []Action) string {
	var opts []string
	opts = append(opts, "resource")
	if len(actions) == 1 && actions[0] == Call {
		s := g.r.IntN(3)
		opts = append(opts, fmt.Sprintf(`resource == Tool::"s%d.t%d"`, s, g.r.IntN(3)),
			fmt.Sprintf(`resource in Server::"s%d"`, s), "resource is Tool",
			fmt.Sprintf(`resource is Tool in Server::"s%d"`, s))
	}
	if len(actions) == 1 && actions[0] == Delegate {
		opts = append(opts, fmt.Sprintf(`resource == Agent::"a%d"`, g.r.IntN(6)), fmt.Sprintf(`resource in Group::"g%d"`, g.r.IntN(3)))
	}
	if len(actions) == 2 && actions[0] == Read {
		opts = append(opts, fmt.Sprintf(`resource in Memory::"m%d"`, g.r.IntN(2)), "resource is Memory")
	}
	return g.pick(opts...)
}

func (g policyGen) condition() string {
	return g.pick(
		"",
		`when { context.session.tainted }`,
		`unless { context.session.tainted }`,
		`when { context.session.findings.contains("injection") }`,
		`when { principal.tier == "advanced" }`,
		`when { principal.hasTag("team") && principal.getTag("team") == "x" }`,
		`when { context.args has n && context.args.n > 3 }`,
		`when { context.args.n > 3 }`, // errors when n is missing or not a Long
		`when { context.args has s && context.args.s like "a*" }`,
		`when { context.task.intent like "*pay*" }`,
		`when { context.task in Task::"root" }`,
	)
}

func (g policyGen) set(t testing.TB, n int) *Set {
	var b strings.Builder
	for i := range n {
		for {
			act, actions := g.action()
			effect, cond := "permit", g.condition()
			if g.r.IntN(8) == 0 { // forbids are rarer, and conditional, or they decide everything
				effect = "forbid"
				for cond == "" || strings.HasPrefix(cond, "unless") {
					cond = g.condition()
				}
			}
			p := fmt.Sprintf("@id(\"p%d\")\n%s(%s, %s, %s) %s;\n", i, effect,
				g.principal(), act, g.resource(actions), cond)
			if _, err := Compile("one.cedar", []byte(p)); err == nil {
				b.WriteString(p)
				break
			}
		}
	}
	return mustCompile(t, b.String())
}

func (g policyGen) request() Request {
	agent := func() Agent {
		a := Agent{Name: fmt.Sprintf("a%d", g.r.IntN(7)), Tier: g.pick("foundation", "advanced")}
		for i := range 3 {
			if g.r.IntN(2) == 0 {
				a.Groups = append(a.Groups, fmt.Sprintf("g%d", i))
			}
		}
		if g.r.IntN(2) == 0 {
			a.Labels = map[string]string{"team": g.pick("x", "y")}
		}
		return a
	}
	req := Request{
		Agent: agent(),
		Task:  Task{ID: "t", Intent: g.pick("pay bills", "read mail")},
		Args:  []byte(g.pick(`{}`, `{"n": 5}`, `{"n": 1}`, `{"n": "five"}`, `{"s": "abc"}`, `{"n": 4, "s": "b"}`)),
	}
	if g.r.IntN(2) == 0 {
		req.Task.Ancestors = []string{"root"}
	}
	req.Session.Tainted = g.r.IntN(3) == 0
	if g.r.IntN(4) == 0 {
		req.Session.Findings = []string{"injection"}
	}
	switch g.r.IntN(4) {
	case 0:
		req.Action, req.Target = Call, Tool{Server: fmt.Sprintf("s%d", g.r.IntN(4)), Name: fmt.Sprintf("t%d", g.r.IntN(4)), Labels: []string{LabelReads}}
	case 1:
		req.Action, req.Target = Read, Memory{Namespace: g.pick("m0", "m0/x", "m1/y/z", "m2")}
	case 2:
		req.Action, req.Target = Write, Memory{Namespace: g.pick("m0", "m1/y")}
	case 3:
		req.Action, req.Target = Delegate, agent()
	}
	return req
}

// TestPartitionEquivalence checks that the indexed decision equals the
// decision over the whole set, on random sets and random requests.
func TestPartitionEquivalence(t *testing.T) {
	ctx := context.Background()
	codes := map[Code]int{}
	for seed := range uint64(6) {
		g := policyGen{rand.New(rand.NewPCG(seed, 7))}
		set := g.set(t, 20+int(seed)*20)
		indexed, whole := NewEngine(set), newEngine(set, true)
		smaller := 0
		for range 1000 {
			req := g.request()
			di, dw := indexed.Decide(ctx, req), whole.Decide(ctx, req)
			if di.Evaluated < dw.Evaluated {
				smaller++
			}
			di.Evaluated, dw.Evaluated = 0, 0
			if !reflect.DeepEqual(di, dw) {
				t.Fatalf("seed %d: request %+v\nindexed: %v %v\nwhole:   %v %v", seed, req, di, di.Policies(), dw, dw.Policies())
			}
			codes[di.Code]++
			pi, pw := indexed.Precheck(ctx, req), whole.Precheck(ctx, req)
			pi.Evaluated, pw.Evaluated = 0, 0
			if !reflect.DeepEqual(pi, pw) {
				t.Fatalf("seed %d: precheck %+v\nindexed: %v\nwhole:   %v", seed, req, pi, pw)
			}
		}
		// The test means something only if the index actually skips
		// policies, and every outcome occurs.
		if smaller < 500 {
			t.Errorf("seed %d: the index evaluated fewer policies in only %d of 1000 decisions", seed, smaller)
		}
	}
	for _, c := range []Code{CodePermit, CodeForbid, CodeNoPermit, CodeError} {
		if codes[c] < 25 {
			t.Errorf("only %d %s decisions among %v", codes[c], c, codes)
		}
	}
	t.Logf("decisions: %v", codes)
}
