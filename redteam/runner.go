package redteam

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/approval"
	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/gateway"
	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/internal/setup"
	"github.com/warden-run/warden/memory"
	"github.com/warden-run/warden/policy"
	"github.com/warden-run/warden/tier"
)

// TierOff is the run with Warden's checks turned off: a grant of every
// tool, a policy that permits everything, and a gateway with no inspection
// and no taint stage (a pass-through that still authenticates). It is the
// sanity check: attack success there should be close to 100% of the pairs
// whose injection reaches the agent.
const TierOff = "off"

// Tiers lists what a run can be made at, from none to the strictest.
var Tiers = []string{TierOff, "foundation", "advanced", "optimized"}

// DefaultPolicy is the organisation policy of a run unless the user gives
// their own: every call is permitted by policy, so that what is measured is
// the task grants and the tier's checks.
const DefaultPolicy = `// Red-team organisation policy: calls are limited by the task grants and the
// tier's checks alone. Pass your own with warden redteam run --policy FILE.
@id("redteam-calls")
permit (principal, action == Action::"call", resource);
`

const offPolicy = `@id("checks-off")
permit (principal, action, resource);
`

// Options configure a run.
type Options struct {
	Packs []*Pack
	// Tiers to run at (default: all of Tiers).
	Tiers []string
	// Agents are the variants to play (default: all of Agents).
	Agents []string
	// Policy is the organisation policy (Cedar) for every tier but off
	// (default DefaultPolicy); PolicyName names it in the report.
	Policy     string
	PolicyName string
	// Workers is how many pairs run at once per tier (default 8).
	Workers int
	// MaxTasks and MaxGoals, when positive, take the first n tasks and
	// goals of each pack (a quick subset).
	MaxTasks, MaxGoals int
	// Reviewer decides the calls held for a human (default: the simulated
	// reviewer, which approves only the user task's expected calls).
	Reviewer Reviewer
	Log      *slog.Logger
	// Progress, when set, is told after each finished run.
	Progress func(tier string, done, total int)
}

// Run plays every agent variant through every (user task, attacker goal)
// pair of the packs, and every task without attack, at each tier, through
// a real deployment per tier, and returns the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	if len(o.Packs) == 0 {
		return nil, errors.New("no packs to run")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if len(o.Tiers) == 0 {
		o.Tiers = Tiers
	}
	for _, t := range o.Tiers {
		if !slices.Contains(Tiers, t) {
			return nil, fmt.Errorf("tier %q: want one of %s", t, strings.Join(Tiers, ", "))
		}
	}
	if len(o.Agents) == 0 {
		o.Agents = Agents
	}
	for _, a := range o.Agents {
		if !slices.Contains(Agents, a) {
			return nil, fmt.Errorf("agent %q: want one of %s", a, strings.Join(Agents, ", "))
		}
	}
	if o.Policy == "" {
		o.Policy, o.PolicyName = DefaultPolicy, "built-in (permit calls; grants and tier decide)"
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.Reviewer == nil {
		o.Reviewer = ExpectedCalls{}
	}
	packs := subset(o.Packs, o.MaxTasks, o.MaxGoals)
	if err := distinctServers(packs); err != nil {
		return nil, err
	}
	jobs := plan(packs, o.Agents)
	rep := &Report{Policy: o.PolicyName, Agents: o.Agents, Started: time.Now().UTC()}
	for _, p := range packs {
		rep.Packs = append(rep.Packs, PackInfo{Name: p.Name, Tasks: len(p.Tasks), Goals: len(p.Goals), Pairs: p.Pairs()})
	}
	for _, t := range o.Tiers {
		start := time.Now()
		runs, err := runTier(ctx, t, packs, jobs, o)
		if err != nil {
			return nil, fmt.Errorf("tier %s: %w", t, err)
		}
		rep.Runs = append(rep.Runs, runs...)
		rep.ApprovalsWired = rep.ApprovalsWired || t != TierOff
		rep.Timings = append(rep.Timings, Timing{Tier: t, Runs: len(runs), Seconds: time.Since(start).Seconds()})
	}
	rep.finish()
	return rep, nil
}

// subset takes the first tasks and goals of each pack.
func subset(packs []*Pack, tasks, goals int) []*Pack {
	if tasks <= 0 && goals <= 0 {
		return packs
	}
	out := make([]*Pack, len(packs))
	for i, p := range packs {
		cp := *p
		if tasks > 0 && len(cp.Tasks) > tasks {
			cp.Tasks = cp.Tasks[:tasks]
		}
		if goals > 0 && len(cp.Goals) > goals {
			cp.Goals = cp.Goals[:goals]
		}
		out[i] = &cp
	}
	return out
}

func distinctServers(packs []*Pack) error {
	owner := map[string]string{}
	for _, p := range packs {
		for _, s := range p.Servers {
			if o, dup := owner[s.Name]; dup {
				return fmt.Errorf("server %s is in packs %s and %s: every pack runs behind the same gateway, so server names must differ", s.Name, o, p.Name)
			}
			owner[s.Name] = p.Name
		}
	}
	return nil
}

// job is one run: a task with or without an attack, played by one agent.
type job struct {
	pack  *Pack
	task  *Task
	goal  *Goal // nil: no attack
	inj   *Injection
	agent string
}

// plan lists the runs: each task without attack (clean agent), then every
// pair with every agent, packs interleaved so that the work spreads.
func plan(packs []*Pack, agents []string) []job {
	var jobs []job
	for _, p := range packs {
		for i := range p.Tasks {
			jobs = append(jobs, job{pack: p, task: &p.Tasks[i], agent: AgentClean})
		}
	}
	perPack := make([][]job, len(packs))
	for pi, p := range packs {
		for ti := range p.Tasks {
			t := &p.Tasks[ti]
			read := PointsRead(p, t)
			for gi := range p.Goals {
				g := &p.Goals[gi]
				styles := stylesFor(g, read)
				s := styles[(ti+gi)%len(styles)]
				inj := render(s, g, p.User, p.PointOrder, read, ti+gi)
				for _, a := range agents {
					perPack[pi] = append(perPack[pi], job{pack: p, task: t, goal: g, inj: &inj, agent: a})
				}
			}
		}
	}
	for i := 0; ; i++ {
		any := false
		for _, pj := range perPack {
			if i < len(pj) {
				jobs = append(jobs, pj[i])
				any = true
			}
		}
		if !any {
			break
		}
	}
	return jobs
}

// PointsRead lists, in the order a faithful agent reads them, the injection
// points the task's calls show it: played against the bare environment.
func PointsRead(p *Pack, t *Task) []string {
	env := NewEnv(p)
	var out []string
	for _, c := range t.Calls {
		if strings.HasPrefix(c.Tool, "memory.") {
			if slices.Contains([]string{"read_graph", "search_nodes", "open_nodes"}, strings.TrimPrefix(c.Tool, "memory.")) {
				for _, m := range p.Memory {
					for _, o := range m.Observations {
						for _, mm := range pointRe.FindAllStringSubmatch(o, -1) {
							if !slices.Contains(out, mm[1]) {
								out = append(out, mm[1])
							}
						}
					}
				}
			}
			continue
		}
		env.Call(c.Tool, c.Args)
		for _, pt := range env.Served() {
			if !slices.Contains(out, pt) {
				out = append(out, pt)
			}
		}
	}
	return out
}

// deployment is one tier's Warden: the control plane's services, the
// simulated environments served over HTTP on loopback, and one gateway per
// worker (each reaching its own copy of the environments, so that pairs run
// at once without sharing state), all on one database and audit log.
type deployment struct {
	tier  string
	d     *setup.Deployment
	resp  *setup.Response // detection, response and approvals (nil with the checks off)
	slots []*slot
	dir   string
	stop  []func()

	reviewer Reviewer
	tasks    sync.Map // task id -> *Task, for the reviewer
	asked    sync.Map // task id -> *atomic.Int64: calls a human was asked about
	approved sync.Map // task id -> *atomic.Int64: of which approved
}

// slot is one worker's gateway, environments and agent.
type slot struct {
	gw    *gateway.Gateway
	url   string
	envs  map[string]*Env // by pack
	agent *agentCred
	roots *x509.CertPool
}

type agentCred struct {
	rec  *identity.Record
	cert tls.Certificate
	tr   *http.Transport
}

func runTier(ctx context.Context, tr string, packs []*Pack, jobs []job, o Options) ([]RunResult, error) {
	dep, err := startDeployment(ctx, tr, packs, o)
	if err != nil {
		return nil, err
	}
	defer dep.close()
	results := make([]RunResult, len(jobs))
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for _, s := range dep.slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) || ctx.Err() != nil {
					return
				}
				results[i] = dep.run(ctx, s, jobs[i], o)
				n := done.Add(1)
				if o.Progress != nil {
					o.Progress(tr, int(n), len(jobs))
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Utility with every approval denied: the runs a human's approval let
	// through are played again with a reviewer who denies everything.
	var again []int
	for i := range results {
		results[i].UtilityAllDenied = results[i].Utility
		if results[i].Approved > 0 {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		dep.reviewer = DenyAll{}
		next.Store(0)
		for _, s := range dep.slots {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					k := int(next.Add(1) - 1)
					if k >= len(again) || ctx.Err() != nil {
						return
					}
					i := again[k]
					r := dep.run(ctx, s, jobs[i], o)
					results[i].UtilityAllDenied = r.Utility && r.Error == ""
				}
			}()
		}
		wg.Wait()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return results, nil
}

func startDeployment(ctx context.Context, tr string, packs []*Pack, o Options) (_ *deployment, err error) {
	dep := &deployment{tier: tr}
	defer func() {
		if err != nil {
			dep.close()
		}
	}()
	if dep.dir, err = os.MkdirTemp("", "warden-redteam-"); err != nil {
		return nil, err
	}
	t := tier.Foundation
	if tr != TierOff {
		if t, err = tier.Parse(tr); err != nil {
			return nil, err
		}
	}
	dir := config.Dir(filepath.Join(dep.dir, "w"))
	if _, err := setup.Init(ctx, dir, setup.InitOptions{TrustDomain: "redteam.warden.local", Tier: t}); err != nil {
		return nil, err
	}

	// The environments, one copy per worker, served over streamable HTTP.
	envLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	envURL := "http://" + envLn.Addr().String()
	for k := range o.Workers {
		s := &slot{envs: map[string]*Env{}}
		for _, p := range packs {
			env := NewEnv(p)
			s.envs[p.Name] = env
			for name, srv := range env.Servers() {
				mux.Handle(fmt.Sprintf("/w%d/%s", k, name), mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
			}
		}
		dep.slots = append(dep.slots, s)
	}
	envSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = envSrv.Serve(envLn) }()
	dep.stop = append(dep.stop, func() { _ = envSrv.Close() })

	upstreams := func(k int) []config.Upstream {
		var ups []config.Upstream
		for _, p := range packs {
			for _, s := range p.Servers {
				u := config.Upstream{Name: s.Name, HTTP: &config.HTTPUpstream{URL: fmt.Sprintf("%s/w%d/%s", envURL, k, s.Name)}, Tools: map[string][]string{}}
				for _, tl := range s.Tools {
					if len(tl.Labels) > 0 {
						u.Tools[tl.Name] = tl.Labels
					}
				}
				ups = append(ups, u)
			}
		}
		return append(ups, config.Upstream{Name: "memory", Builtin: "memory"})
	}
	cfg, err := config.Load(dir.Config())
	if err != nil {
		return nil, err
	}
	cfg.Gateway.Upstreams = upstreams(0)
	cfg.Gateway.CallTimeout = 20 * time.Second
	if err := cfg.Save(dir.Config()); err != nil {
		return nil, err
	}
	if dep.d, err = setup.Open(ctx, dir, o.Log); err != nil {
		return nil, err
	}
	d := dep.d
	for _, load := range []func(context.Context) error{d.Identity.Registry().Load, d.Grants.Load, d.Policy.Load} {
		if err := load(ctx); err != nil {
			return nil, err
		}
	}
	pol, name := o.Policy, "redteam.cedar"
	if tr == TierOff {
		pol = offPolicy
	}
	if _, err := d.Policy.Apply(ctx, name, []byte(pol), policy.Meta{By: "warden redteam", Message: "red-team organisation policy"}); err != nil {
		return nil, fmt.Errorf("applying the organisation policy: %w", err)
	}

	roots := x509.NewCertPool()
	roots.AddCert(d.Identity.CA().Root())
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	dep.stop = append(dep.stop, cancel)
	dep.reviewer = o.Reviewer
	if tr != TierOff {
		// Detection, response and approvals, as warden serve runs them.
		if dep.resp, err = d.EnableResponse(ctx, setup.ResponseOptions{ApprovalWait: 20 * time.Second}); err != nil {
			return nil, fmt.Errorf("enabling detection and response: %w", err)
		}
		go dep.review(sctx)
	}
	for k, s := range dep.slots {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addr := ln.Addr().String()
		ups := upstreams(k)
		opt := func(go_ *gateway.Options) {
			go_.Config.Upstreams = ups
			go_.Config.Listen = addr
			go_.URL = "https://" + addr + "/mcp"
			if tr == TierOff {
				go_.Inspector = nil
				go_.Stages = passThrough()
			}
		}
		if dep.resp != nil {
			opt = dep.resp.Wrap(opt)
		}
		gw, err := d.NewGatewayWith(nil, opt)
		if err != nil {
			ln.Close()
			return nil, err
		}
		if dep.resp != nil {
			dep.resp.UseGateway(gw)
		}
		gw.Start(sctx)
		done := make(chan struct{})
		go func() { _ = gw.Serve(sctx, ln); close(done) }()
		dep.stop = append(dep.stop, func() { cancel(); gw.Close(); <-done })
		s.gw, s.url, s.roots = gw, "https://"+addr+"/mcp", roots
		if s.agent, err = dep.enrol(ctx, fmt.Sprintf("redteam-worker-%d", k), roots); err != nil {
			return nil, err
		}
	}
	return dep, nil
}

// passThrough is the pipeline with Warden's checks off: who is calling and
// with which grant is still established, nothing is inspected, nothing
// taints.
func passThrough() []gateway.Stage {
	var out []gateway.Stage
	for _, s := range gateway.DefaultStages() {
		switch s.Name {
		case "outbound", "inbound", "taint":
			continue
		}
		out = append(out, s)
	}
	return out
}

func (dep *deployment) close() {
	for i := len(dep.stop) - 1; i >= 0; i-- {
		dep.stop[i]()
	}
	dep.stop = nil
	if dep.d != nil {
		_ = dep.d.Close()
		dep.d = nil
	}
	if dep.dir != "" {
		_ = os.RemoveAll(dep.dir)
	}
}

// enrol registers an agent and enrols its key, as `warden agent register`
// and the agent's first start would.
func (dep *deployment) enrol(ctx context.Context, name string, roots *x509.CertPool) (*agentCred, error) {
	t := tier.Foundation
	if dep.tier != TierOff {
		t, _ = tier.Parse(dep.tier)
	}
	cred, rec, err := dep.d.EnrolAgent(ctx, "warden redteam", identity.Spec{Name: name, Owner: "redteam@warden.local", Model: "scripted", Tier: t})
	if err != nil {
		return nil, err
	}
	c := cred.TLSCertificate()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS13},
		MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}
	return &agentCred{rec: rec, cert: c, tr: tr}, nil
}

// usesMemory reports whether a pack touches Warden's memory: its runs then
// get an agent of their own, so that one run's memory is not another's.
func usesMemory(p *Pack) bool {
	if len(p.Memory) > 0 {
		return true
	}
	for _, t := range p.Tasks {
		for _, c := range t.Calls {
			if strings.HasPrefix(c.Tool, "memory.") {
				return true
			}
		}
	}
	for _, g := range p.Goals {
		for _, c := range g.Plan {
			if strings.HasPrefix(c.Tool, "memory.") {
				return true
			}
		}
	}
	return false
}

var agentSeq atomic.Int64

// run plays one job on a worker's slot and judges it.
func (dep *deployment) run(ctx context.Context, s *slot, j job, o Options) RunResult {
	res := RunResult{Tier: dep.tier, Pack: j.pack.Name, Task: j.task.ID, Agent: j.agent}
	if j.goal != nil {
		res.Goal, res.Kind, res.Style = j.goal.ID, j.goal.Kind, j.inj.Style
	}
	fail := func(err error) RunResult {
		res.Error = err.Error()
		return res
	}
	env := s.envs[j.pack.Name]
	var planted map[string]string
	if j.inj != nil {
		planted = j.inj.Texts
	}
	env.Reset(planted)

	ag := s.agent
	// A run gets an agent of its own when it touches memory (one run's
	// memory is not another's) or when detection may contain the agent
	// (one run's containment is not another's).
	if usesMemory(j.pack) || dep.resp != nil {
		var err error
		if ag, err = dep.enrol(ctx, fmt.Sprintf("redteam-run-%d", agentSeq.Add(1)), s.roots); err != nil {
			return fail(err)
		}
		defer ag.tr.CloseIdleConnections()
		if err := dep.seedMemory(ctx, j.pack, ag, planted); err != nil {
			return fail(err)
		}
	}

	req, err := dep.grantFor(j, ag)
	if err != nil {
		return fail(fmt.Errorf("opening the task's grant: %w", err))
	}
	task, tok, err := dep.d.Grants.Open(ctx, req)
	if err != nil {
		return fail(fmt.Errorf("opening the task's grant: %w", err))
	}
	dep.tasks.Store(task.ID, j.task)
	defer dep.tasks.Delete(task.ID)
	defer func() { _, _ = dep.d.Grants.Complete(context.WithoutCancel(ctx), "warden redteam", task.ID) }()

	hc := &http.Client{Transport: gateway.GrantTransport(tok, ag.tr)}
	c := mcp.NewClient(&mcp.Implementation{Name: "redteam-" + j.agent, Version: "1"}, nil)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	cs, err := c.Connect(cctx, &mcp.StreamableClientTransport{Endpoint: s.url, HTTPClient: hc, MaxRetries: -1}, nil)
	cancel()
	if err != nil {
		return fail(fmt.Errorf("connecting to the gateway: %w", err))
	}
	a := &agent{variant: j.agent, pack: j.pack, task: j.task, goal: j.goal, inj: j.inj, c: &gwCaller{cs: cs}}
	a.run(ctx)
	_ = cs.Close()

	out := &Outcome{State: env.Snapshot(), Received: a.received.String(), Observes: j.pack.Attacker.Observes}
	if out.Memory, err = dep.memoryWritten(ctx, ag, task.ID); err != nil {
		return fail(err)
	}
	res.Steps = a.steps
	res.Perceived = a.obeyed || a.perceived()
	res.Utility = Holds(j.task.Check, out)
	if j.goal != nil {
		res.Attacked = Holds(j.goal.Success, out)
	}
	expected := map[string]bool{}
	for _, c := range j.task.Calls {
		expected[callKey(c.Tool, c.Args)] = true
	}
	res.Approvals = int(counter(&dep.asked, task.ID).Load())
	res.Approved = int(counter(&dep.approved, task.ID).Load())
	dep.asked.Delete(task.ID)
	dep.approved.Delete(task.ID)
	for _, st := range a.steps {
		if st.Approval && dep.resp == nil {
			res.Approvals++ // no approvals here: the refusal says a human was needed
		}
		if st.Role == "task" {
			res.BenignCalls++
			if !st.Allowed && st.Code != "error" {
				res.BenignBlocked++
			}
		}
	}
	return res
}

func counter(m *sync.Map, key string) *atomic.Int64 {
	v, _ := m.LoadOrStore(key, new(atomic.Int64))
	return v.(*atomic.Int64)
}

// reviewerID is the operator identity the simulated reviewer decides as.
const reviewerName = "redteam-reviewer"

// review is the simulated human: it watches the calls held for approval
// and decides each, as an operator (/admin/) through the approval service.
func (dep *deployment) review(ctx context.Context) {
	decider := "spiffe://" + dep.d.Config.TrustDomain + "/admin/" + reviewerName
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pending, err := dep.resp.Approvals.List(ctx, approval.Pending, 200)
		if err != nil {
			continue
		}
		for _, ap := range pending {
			v, ok := dep.tasks.Load(ap.Task)
			var t *Task
			if ok {
				t = v.(*Task)
			}
			yes := dep.reviewer.Approve(Held{Task: t, Tool: ap.Tool, Args: json.RawMessage(ap.Arguments)})
			if _, err := dep.resp.Approvals.Decide(ctx, ap.ID, decider, yes, "simulated reviewer"); err != nil {
				continue
			}
			counter(&dep.asked, ap.Task).Add(1)
			if yes {
				counter(&dep.approved, ap.Task).Add(1)
			}
		}
	}
}

// grantFor is the task's grant as its operator wrote it, or, with the
// checks off, every tool.
func (dep *deployment) grantFor(j job, ag *agentCred) (grant.OpenRequest, error) {
	intent := j.task.Grant.Intent
	if intent == "" {
		intent = j.task.Prompt
	}
	intent = strings.Join(strings.Fields(intent), " ")
	if len(intent) > 1000 {
		intent = intent[:1000]
	}
	r := grant.OpenRequest{Grantee: ag.rec, Requester: "warden redteam", Intent: intent, TTL: 10 * time.Minute}
	if dep.tier == TierOff {
		r.Scope, r.Budget = grant.Scope{{Tool: "*"}}, 500
		return r, nil
	}
	sc, err := j.task.Grant.scope()
	if err != nil {
		return r, err
	}
	r.Scope, r.Egress, r.Budget = sc, j.task.Grant.Egress, j.task.Grant.Budget
	if r.Budget == 0 {
		r.Budget = 30
	}
	return r, nil
}

// seedMemory writes the pack's memory entries into the agent's namespace,
// as an earlier session of the agent left them: untrusted ones with the
// provenance Warden would have recorded.
func (dep *deployment) seedMemory(ctx context.Context, p *Pack, ag *agentCred, planted map[string]string) error {
	for i, m := range p.Memory {
		obs := make([]string, len(m.Observations))
		for k, o := range m.Observations {
			obs[k] = pointRe.ReplaceAllStringFunc(o, func(s string) string {
				n := pointRe.FindStringSubmatch(s)[1]
				return pointText(p.Points[n].Default, planted[n])
			})
		}
		payload, err := json.Marshal(map[string]any{"entities": []map[string]any{{"name": m.Entity, "entityType": m.Type, "observations": obs}}})
		if err != nil {
			return err
		}
		e := memory.Entry{NS: "agent/" + ag.rec.Name, Op: memory.OpCreateEntities, Payload: payload, Agent: ag.rec.ID.String(),
			Task: "t_earlier", Session: "earlier", Call: fmt.Sprintf("seed-%d", i), Trust: memory.Trusted, Status: memory.Active}
		if m.Untrusted {
			e.Trust, e.Sources = memory.Untrusted, []string{"email.read#earlier"}
		}
		if _, err := dep.d.MemoryStore.Append(ctx, e); err != nil {
			return fmt.Errorf("seeding memory: %w", err)
		}
	}
	return nil
}

// memoryWritten returns the texts of the trusted, active entries the task
// wrote: what later tasks would be served as trustworthy.
func (dep *deployment) memoryWritten(ctx context.Context, ag *agentCred, task string) ([]string, error) {
	var out []string
	for _, ns := range []string{"agent/" + ag.rec.Name, "shared", "task/" + task} {
		entries, _, err := dep.d.MemoryStore.Load(ctx, ns)
		if err != nil {
			return nil, fmt.Errorf("reading memory %s: %w", ns, err)
		}
		for _, e := range entries {
			if e.Task != task || e.Trust != memory.Trusted || e.Status != memory.Active {
				continue
			}
			var v any
			if json.Unmarshal(e.Payload, &v) == nil {
				walkStrings(v, func(s string) { out = append(out, s) })
			}
		}
	}
	return out, nil
}

// gwCaller calls through an MCP session with the gateway.
type gwCaller struct{ cs *mcp.ClientSession }

func (g *gwCaller) Call(ctx context.Context, tool string, args map[string]any) Result {
	b, _ := json.Marshal(jsonable(args))
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := g.cs.CallTool(cctx, &mcp.CallToolParams{Name: tool, Arguments: json.RawMessage(b)})
	if err != nil {
		return Result{Code: "error", Text: err.Error()}
	}
	text := resultText(r)
	if !r.IsError {
		return Result{Allowed: true, Text: text}
	}
	res := Result{Code: "error", Text: text}
	if d, ok := r.Meta[gateway.MetaDecision].(map[string]any); ok {
		res.Code, _ = d["code"].(string)
		if res.Code == "" {
			res.Code = "refused"
		}
	}
	res.Approval = needsHuman(res.Code)
	return res
}

// needsHuman reports whether a refusal came from a human's decision or
// the want of one: the sound flow rule asks for approval, and calls held
// for approval end with approval_* codes.
func needsHuman(code string) bool {
	return code == "taint_sound" || strings.HasPrefix(code, "approval_")
}

func (g *gwCaller) Descriptions(ctx context.Context) string {
	var b strings.Builder
	for t, err := range g.cs.Tools(ctx, nil) {
		if err != nil {
			break
		}
		fmt.Fprintf(&b, "tool %s: %s\n", t.Name, t.Description)
	}
	return b.String()
}

func resultText(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			b.WriteString(t.Text)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// callKey identifies a call by its tool and canonical arguments.
func callKey(tool string, args map[string]any) string {
	b, _ := json.Marshal(jsonable(args)) // map keys are sorted
	return tool + "\x00" + string(b)
}
