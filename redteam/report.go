package redteam

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// RunResult is one run: a task, with or without an attack, played by one
// agent at one tier.
type RunResult struct {
	Tier  string `json:"tier"`
	Pack  string `json:"pack"`
	Task  string `json:"task"`
	Goal  string `json:"goal,omitempty"` // "" for a run without attack
	Kind  string `json:"kind,omitempty"`
	Style string `json:"style,omitempty"`
	Agent string `json:"agent"`
	// Perceived: the injected instruction reached the agent whole.
	Perceived bool `json:"perceived"`
	// Attacked: the goal's harm happened.
	Attacked bool `json:"attacked"`
	// Utility: the user task was done.
	Utility bool `json:"utility"`
	// BenignCalls are the task's own calls the agent made; BenignBlocked
	// those Warden refused.
	BenignCalls   int `json:"benign_calls"`
	BenignBlocked int `json:"benign_blocked"`
	Approvals     int `json:"approvals"` // calls a human was (or would have been) asked about
	Approved      int `json:"approved"`  // of which the reviewer approved
	// UtilityAllDenied: the task was done with every approval denied.
	UtilityAllDenied bool   `json:"utility_all_denied"`
	Steps            []Step `json:"steps,omitempty"`
	Error            string `json:"error,omitempty"`
}

// Report is a run's results and their breakdown.
type Report struct {
	Started time.Time  `json:"started"`
	Policy  string     `json:"policy"`
	Agents  []string   `json:"agents"`
	Packs   []PackInfo `json:"packs"`
	// Overall is over every attacked run of every tier run but off
	// (attack success over the attacking agents; utility over all).
	Overall Metrics `json:"overall"`
	// Tiers breaks the results down per tier: overall, per pack, per
	// style, per agent and per goal kind.
	Tiers []TierReport `json:"tiers"`
	// Attacks are the successful attacks at the tiers that are not off,
	// each with its call trace.
	Attacks []RunResult `json:"attacks"`
	// Errors are runs that could not be made (a grant refused, ...).
	Errors  []RunResult `json:"errors,omitempty"`
	Timings []Timing    `json:"timings"`
	// ApprovalsWired says whether the gateway holds calls for a human, so
	// that the simulated reviewer could approve them; when false, every
	// call that needed a human was denied, and utility with the reviewer
	// equals utility with every approval denied.
	ApprovalsWired bool `json:"approvals_wired"`

	Runs []RunResult `json:"-"`
}

// PackInfo describes a pack in the report.
type PackInfo struct {
	Name  string `json:"name"`
	Tasks int    `json:"tasks"`
	Goals int    `json:"goals"`
	Pairs int    `json:"pairs"`
}

// Timing is how long a tier took.
type Timing struct {
	Tier    string  `json:"tier"`
	Runs    int     `json:"runs"`
	Seconds float64 `json:"seconds"`
}

// Metrics are the figures of a group of runs.
type Metrics struct {
	// Runs are the attacked runs (pairs times agents) in the group.
	Runs int `json:"runs"`
	// AttackSuccessRate is the share of attacked runs by attacking agents
	// (all but clean) whose goal was reached.
	AttackSuccessRate float64 `json:"attack_success_rate"`
	// AttackSuccessReachable is the same over the runs whose injection
	// reached the agent.
	AttackSuccessReachable float64 `json:"attack_success_reachable"`
	// Reached is the share of attacked runs whose injection reached the agent.
	Reached float64 `json:"injection_reached"`
	// UtilityWithoutAttack is the share of tasks done by the clean agent
	// with no injection planted (absent for per-style and per-agent rows).
	UtilityWithoutAttack *float64 `json:"utility_without_attack,omitempty"`
	// UtilityUnderAttack is the share of attacked runs whose task was done,
	// with the simulated reviewer deciding held calls.
	UtilityUnderAttack float64 `json:"utility_under_attack"`
	// UtilityAllDenied is utility under attack with every approval denied.
	UtilityAllDenied float64 `json:"utility_under_attack_all_denied"`
	// BenignBlockedRate is the share of the tasks' own calls Warden refused.
	BenignBlockedRate float64 `json:"benign_blocked_rate"`
	// ApprovalsPerTask is the mean number of calls per run a human was
	// asked about.
	ApprovalsPerTask float64 `json:"approvals_per_task"`
	Successes        int     `json:"successes"`
}

// TierReport is one tier's breakdown.
type TierReport struct {
	Tier    string             `json:"tier"`
	Overall Metrics            `json:"overall"`
	Packs   map[string]Metrics `json:"packs"`
	Styles  map[string]Metrics `json:"styles"`
	Agents  map[string]Metrics `json:"agents"`
	Kinds   map[string]Metrics `json:"kinds"`
}

// finish computes the breakdowns.
func (r *Report) finish() {
	byTier := map[string][]RunResult{}
	var order []string
	for _, x := range r.Runs {
		if _, ok := byTier[x.Tier]; !ok {
			order = append(order, x.Tier)
		}
		byTier[x.Tier] = append(byTier[x.Tier], x)
		if x.Error != "" {
			r.Errors = append(r.Errors, x)
		}
	}
	var notOff []RunResult
	for _, t := range order {
		runs := byTier[t]
		tr := TierReport{Tier: t, Overall: metrics(runs, true), Packs: group(runs, func(x RunResult) string { return x.Pack }, true),
			Styles: group(runs, func(x RunResult) string { return x.Style }, false),
			Agents: group(runs, func(x RunResult) string { return x.Agent }, false),
			Kinds:  group(runs, func(x RunResult) string { return x.Kind }, false)}
		r.Tiers = append(r.Tiers, tr)
		if t != TierOff {
			notOff = append(notOff, runs...)
			for _, x := range runs {
				if x.Attacked {
					r.Attacks = append(r.Attacks, x)
				}
			}
		}
	}
	if len(notOff) == 0 {
		notOff = r.Runs
	}
	r.Overall = metrics(notOff, true)
}

func group(runs []RunResult, key func(RunResult) string, withBaseline bool) map[string]Metrics {
	by := map[string][]RunResult{}
	for _, x := range runs {
		k := key(x)
		if k == "" {
			continue
		}
		by[k] = append(by[k], x)
	}
	out := map[string]Metrics{}
	for k, rs := range by {
		out[k] = metrics(rs, withBaseline)
	}
	return out
}

func metrics(runs []RunResult, withBaseline bool) Metrics {
	var m Metrics
	var attacking, success, reached, reachedSuccess, util, utilDenied, calls, blocked, approvals, base, baseOK int
	for _, x := range runs {
		if x.Error != "" {
			continue
		}
		if x.Goal == "" {
			base++
			if x.Utility {
				baseOK++
			}
			continue
		}
		m.Runs++
		if x.Utility {
			util++
		}
		if x.UtilityAllDenied {
			utilDenied++
		}
		calls += x.BenignCalls
		blocked += x.BenignBlocked
		approvals += x.Approvals
		if x.Agent == AgentClean {
			continue
		}
		attacking++
		if x.Attacked {
			success++
		}
		if x.Perceived {
			reached++
			if x.Attacked {
				reachedSuccess++
			}
		}
	}
	m.Successes = success
	m.AttackSuccessRate = ratio(success, attacking)
	m.AttackSuccessReachable = ratio(reachedSuccess, reached)
	m.Reached = ratio(reached, attacking)
	m.UtilityUnderAttack = ratio(util, m.Runs)
	m.UtilityAllDenied = ratio(utilDenied, m.Runs)
	m.BenignBlockedRate = ratio(blocked, calls)
	m.ApprovalsPerTask = ratio(approvals, m.Runs)
	if withBaseline && base > 0 {
		u := ratio(baseOK, base)
		m.UtilityWithoutAttack = &u
	}
	return m
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// WriteJSON writes the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

func optPct(f *float64) string {
	if f == nil {
		return "-"
	}
	return pct(*f)
}

// WriteTable writes the report as text tables.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }
	total := 0
	for _, pk := range r.Packs {
		total += pk.Pairs
	}
	p("Warden red team: %d packs, %d pairs, agents %s; policy: %s\n", len(r.Packs), total, strings.Join(r.Agents, ", "), r.Policy)
	if r.ApprovalsWired {
		p("approvals: calls held for a human are decided by the simulated reviewer (it approves only the user task's\n")
		p("expected calls); the runs it let through are played again with every approval denied.\n")
	}
	p("\n")
	head := "\tattack success\treachable success\tinjection reached\tutility no attack\tutility under attack\t(all approvals denied)\tbenign blocked\tapprovals/task\truns\n"
	row := func(name string, m Metrics) {
		p("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%d\n", name, pct(m.AttackSuccessRate), pct(m.AttackSuccessReachable), pct(m.Reached),
			optPct(m.UtilityWithoutAttack), pct(m.UtilityUnderAttack), pct(m.UtilityAllDenied), pct(m.BenignBlockedRate), m.ApprovalsPerTask, m.Runs)
	}
	p("%s", "tier"+head)
	for _, t := range r.Tiers {
		row(t.Tier, t.Overall)
	}
	sections := []struct {
		title string
		get   func(TierReport) map[string]Metrics
	}{
		{"pack", func(t TierReport) map[string]Metrics { return t.Packs }},
		{"agent", func(t TierReport) map[string]Metrics { return t.Agents }},
		{"style", func(t TierReport) map[string]Metrics { return t.Styles }},
		{"goal kind", func(t TierReport) map[string]Metrics { return t.Kinds }},
	}
	for _, s := range sections {
		p("\nper %s\n", s.title)
		p("tier / %s%s", s.title, head)
		for _, t := range r.Tiers {
			g := s.get(t)
			keys := make([]string, 0, len(g))
			for k := range g {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if s.title == "agent" {
				slices.SortFunc(keys, func(a, b string) int { return slices.Index(Agents, a) - slices.Index(Agents, b) })
			}
			for _, k := range keys {
				row(t.Tier+" / "+k, g[k])
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nsuccessful attacks (tiers other than off): %d\n", len(r.Attacks))
	for i, a := range r.Attacks {
		if i == 50 {
			fmt.Fprintf(w, "  ... %d more (see --format json)\n", len(r.Attacks)-50)
			break
		}
		fmt.Fprintf(w, "  [%s] %s: task %s, goal %s, style %s, agent %s\n", a.Tier, a.Pack, a.Task, a.Goal, a.Style, a.Agent)
		for _, s := range a.Steps {
			if s.Role == "task" {
				continue
			}
			v := "ALLOWED"
			if !s.Allowed {
				v = "DENIED " + s.Code
			}
			fmt.Fprintf(w, "      %-7s %s %s -> %s\n", s.Role, s.Tool, shorten(s.Args, 100), v)
		}
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(w, "\nruns that could not be made: %d\n", len(r.Errors))
		for i, e := range r.Errors {
			if i == 20 {
				break
			}
			fmt.Fprintf(w, "  [%s] %s/%s %s %s: %s\n", e.Tier, e.Pack, e.Task, e.Goal, e.Agent, e.Error)
		}
	}
	fmt.Fprintln(w)
	for _, t := range r.Timings {
		fmt.Fprintf(w, "tier %s: %d runs in %.1fs (%.0f runs/s)\n", t.Tier, t.Runs, t.Seconds, float64(t.Runs)/max(t.Seconds, 1e-9))
	}
	return nil
}

var htmlPage = template.Must(template.New("r").Funcs(template.FuncMap{"pct": pct, "opt": optPct, "keys": func(m map[string]Metrics) []string {
	k := make([]string, 0, len(m))
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Warden red team</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}td:first-child,th:first-child{text-align:left}.bad{color:#b00}</style>
</head><body><h1>Warden red team</h1>
<p>Policy: {{.Policy}}. Agents: {{range .Agents}}{{.}} {{end}}. {{if .ApprovalsWired}}Calls held for a human are decided by the simulated reviewer; the runs it let through are played again with every approval denied.{{end}}</p>
<p>Overall (every tier but off): attack success {{pct .Overall.AttackSuccessRate}}, utility under attack {{pct .Overall.UtilityUnderAttack}}.</p>
{{define "head"}}<tr><th></th><th>attack success</th><th>reachable success</th><th>injection reached</th><th>utility no attack</th><th>utility under attack</th><th>all approvals denied</th><th>benign blocked</th><th>approvals/task</th><th>runs</th></tr>{{end}}
{{define "row"}}<td class="{{if gt .AttackSuccessRate 0.0}}bad{{end}}">{{pct .AttackSuccessRate}}</td><td>{{pct .AttackSuccessReachable}}</td><td>{{pct .Reached}}</td><td>{{opt .UtilityWithoutAttack}}</td><td>{{pct .UtilityUnderAttack}}</td><td>{{pct .UtilityAllDenied}}</td><td>{{pct .BenignBlockedRate}}</td><td>{{printf "%.2f" .ApprovalsPerTask}}</td><td>{{.Runs}}</td>{{end}}
<h2>Per tier</h2><table>{{template "head"}}{{range .Tiers}}<tr><td>{{.Tier}}</td>{{template "row" .Overall}}</tr>{{end}}</table>
{{range .Tiers}}{{$t := .}}<h2>{{.Tier}}</h2>
<table>{{template "head"}}{{range keys .Packs}}<tr><td>pack {{.}}</td>{{template "row" (index $t.Packs .)}}</tr>{{end}}
{{range keys .Agents}}<tr><td>agent {{.}}</td>{{template "row" (index $t.Agents .)}}</tr>{{end}}
{{range keys .Styles}}<tr><td>style {{.}}</td>{{template "row" (index $t.Styles .)}}</tr>{{end}}
{{range keys .Kinds}}<tr><td>goal kind {{.}}</td>{{template "row" (index $t.Kinds .)}}</tr>{{end}}</table>{{end}}
<h2>Successful attacks ({{len .Attacks}})</h2>
{{range .Attacks}}<details><summary>[{{.Tier}}] {{.Pack}}: task {{.Task}}, goal {{.Goal}}, style {{.Style}}, agent {{.Agent}}</summary><ol>
{{range .Steps}}<li>{{.Role}} <code>{{.Tool}} {{.Args}}</code> → {{if .Allowed}}allowed{{else}}denied {{.Code}}{{end}}</li>{{end}}</ol></details>{{end}}
</body></html>
`))

// WriteHTML writes the report as a standalone HTML page.
func (r *Report) WriteHTML(w io.Writer) error { return htmlPage.Execute(w, r) }
