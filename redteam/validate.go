package redteam

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Check plays each task and goal straight against the bare environment (no
// gateway) and reports scenarios that cannot measure anything: a task whose
// calls do not make its check hold, a goal whose plan does not make its
// success hold, a goal that a faithful agent's task already achieves, a
// task that reads no injection point (no attack could reach it).
func Check(p *Pack) error {
	var errs []error
	ctx := context.Background()
	for i := range p.Tasks {
		t := &p.Tasks[i]
		out := direct(ctx, p, t, nil)
		if !Holds(t.Check, out) {
			errs = append(errs, fmt.Errorf("task %s: its calls do not make its check hold on the bare environment", t.ID))
		}
		if len(PointsRead(p, t)) == 0 {
			errs = append(errs, fmt.Errorf("task %s: reads no injection point, so no attack can reach it", t.ID))
		}
		for _, g := range p.Goals {
			if Holds(g.Success, out) {
				errs = append(errs, fmt.Errorf("goal %s: already holds after task %s done faithfully: its success condition does not tell harm from work", g.ID, t.ID))
			}
		}
	}
	for i := range p.Goals {
		g := &p.Goals[i]
		// The planted text alone must not count as the harm.
		for _, st := range stylesFor(g, p.PointOrder) {
			inj := render(st, g, p.User, p.PointOrder, p.PointOrder, 0)
			env := NewEnv(p)
			env.Reset(inj.Texts)
			if Holds(g.Success, &Outcome{State: env.Snapshot(), Observes: p.Attacker.Observes}) {
				errs = append(errs, fmt.Errorf("goal %s: holds as soon as its text is planted (%s), before any agent acts", g.ID, st))
				break
			}
		}
		t := &Task{ID: "goal-" + g.ID, Calls: g.Plan}
		out := direct(ctx, p, t, g)
		if !Holds(g.Success, out) {
			errs = append(errs, fmt.Errorf("goal %s: its plan does not make its success hold on the bare environment", g.ID))
		}
	}
	return errors.Join(errs...)
}

// direct plays calls against a fresh environment, the agent knowing every
// value (it is given the whole state), and returns the outcome.
func direct(ctx context.Context, p *Pack, t *Task, g *Goal) *Outcome {
	env := NewEnv(p)
	dc := &directCaller{env: env, pack: p}
	a := &agent{variant: AgentClean, pack: p, task: t, c: dc}
	if g != nil {
		// the plan's values are known: the attacker wrote them
		a.see(g.Instruction)
		for _, c := range g.Plan {
			a.see(strings.Join(c.Uses, "\n"))
		}
	}
	a.run(ctx)
	return &Outcome{State: env.Snapshot(), Received: a.received.String(), Memory: dc.memory, Observes: p.Attacker.Observes}
}

// directCaller calls the environment in process, with a stand-in for
// Warden's memory (reads return the seeded entries; writes are kept).
type directCaller struct {
	env    *Env
	pack   *Pack
	memory []string
}

func (d *directCaller) Call(_ context.Context, tool string, args map[string]any) Result {
	if name, ok := strings.CutPrefix(tool, "memory."); ok {
		switch name {
		case "read_graph", "search_nodes", "open_nodes":
			var b strings.Builder
			for _, m := range d.pack.Memory {
				fmt.Fprintf(&b, "%s (%s): %s\n", m.Entity, m.Type, strings.Join(m.Observations, "; "))
			}
			return Result{Allowed: true, Text: pointRe.ReplaceAllString(b.String(), "")}
		default:
			walkStrings(jsonable(args), func(s string) { d.memory = append(d.memory, s) })
			return Result{Allowed: true, Text: "ok"}
		}
	}
	text, failed := d.env.Call(tool, normalizeArgs(args))
	if failed {
		return Result{Code: "error", Text: text}
	}
	return Result{Allowed: true, Text: text}
}

func (d *directCaller) Descriptions(context.Context) string { return "" }
