package respond

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/gateway"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/store"
	"github.com/warden-run/warden/tier"
)

// fakes records what containment was asked for.
type fakes struct {
	mu        sync.Mutex
	calls     []string
	failFirst int // fail this many attempts (transient) first
	block     chan struct{}
	err       error // returned by every call when set
	attempts  int
}

func (f *fakes) note(what string) error {
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.err != nil {
		return f.err
	}
	if f.failFirst > 0 {
		f.failFirst--
		return errors.New("transient")
	}
	f.calls = append(f.calls, what)
	return nil
}

func (f *fakes) RevokeTask(_ context.Context, task, _ string) error { return f.note("revoke " + task) }
func (f *fakes) RevokeAgentTasks(_ context.Context, agent, _ string) (int, error) {
	return 1, f.note("revoke all of " + agent)
}
func (f *fakes) DisableAgent(_ context.Context, agent, _ string) error {
	return f.note("disable " + agent)
}
func (f *fakes) KillSessions(_ context.Context, agent, _ string) error {
	return f.note("sessions " + agent)
}
func (f *fakes) KillSandboxes(_ context.Context, agent, _ string) (int, error) {
	return 2, f.note("sandboxes " + agent)
}
func (f *fakes) RequireApproval(_ context.Context, agent, rule, _ string, _ time.Time) error {
	return f.note("approval " + agent + " " + rule)
}

type noMemory struct{}

func (noMemory) SnapshotMemory(context.Context, string, string, string) (string, error) {
	return "", fmt.Errorf("%w: agent memory is not built yet", ErrPermanent)
}

func (f *fakes) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakes) actions() Actions {
	return Actions{Revoker: f, Disabler: f, Sessions: f, Sandboxes: f, Approvals: f, Memory: noMemory{}}
}

type engineOpts struct {
	rules    string
	tier     tier.Tier
	db       *store.DB
	notifier *Notifier
	queue    int
	budget   time.Duration
	flush    time.Duration
	onAction func(Alert, ActionResult)
}

func startEngine(t testing.TB, f *fakes, o engineOpts) (*Engine, *events.Recorder) {
	t.Helper()
	rs := compileYAML(t, o.rules)
	rec := &events.Recorder{}
	if o.tier == 0 {
		o.tier = tier.Optimized
	}
	e, err := New(ctx, Options{Rules: rs, DB: o.db, Record: rec, Actions: f.actions(), Notifier: o.notifier, Labels: labelsOf,
		Preset: func(string) tier.Preset { return tier.For(o.tier) }, QueueSize: o.queue, EmitBudget: o.budget,
		FlushInterval: o.flush, OnAction: o.onAction, Log: slogDiscard()})
	if err != nil {
		t.Fatal(err)
	}
	e.Start(ctx)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = e.Close(cctx)
	})
	return e, rec
}

func emitAll(t testing.TB, e *Engine, evs ...ev) {
	t.Helper()
	for _, x := range evs {
		if err := e.Emit(ctx, x.event()); err != nil {
			t.Fatal(err)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.Sync(sctx); err != nil {
		t.Fatal(err)
	}
}

func remediations(rec *events.Recorder) []string {
	var out []string
	for _, e := range rec.Events() {
		if e.ClassUID == events.ClassRemediationActivity {
			out = append(out, e.Warden.Attrs["action"]+":"+e.Warden.Attrs["outcome"])
		}
	}
	return out
}

const containRule = `
id: retry
title: retried denial
level: high
condition: reason == "tool_not_granted"
correlation: {type: event_count, group-by: [agent], timespan: 1m, condition: {gte: 2}}
actions: [revoke_grant, kill_sessions, kill_sandboxes, require_approval, disable_agent, snapshot_memory, notify]
`

func TestEngineRunsPlaybookAndRecordsEachAction(t *testing.T) {
	f := &fakes{}
	e, rec := startEngine(t, f, engineOpts{rules: containRule})
	emitAll(t, e, deny(0, agentA, "x.y"), deny(s, agentA, "x.y"))
	want := []string{"revoke t1", "sessions " + agentA, "sandboxes " + agentA, "approval " + agentA + " retry", "disable " + agentA}
	if got := f.got(); !slices.Equal(got, want) {
		t.Fatalf("containment %v, want %v", got, want)
	}
	got := remediations(rec)
	wantRec := []string{"revoke_grant:done", "kill_sessions:done", "kill_sandboxes:done", "require_approval:done", "disable_agent:done",
		"snapshot_memory:failed", "notify:failed"}
	if !slices.Equal(got, wantRec) {
		t.Fatalf("recorded %v, want %v", got, wantRec)
	}
	var finding *events.Event
	for _, x := range rec.Events() {
		if x.ClassUID == events.ClassDetectionFinding {
			finding = &x
		}
		if x.ClassUID == events.ClassRemediationActivity && x.Warden.Attrs["action"] == "snapshot_memory" {
			if x.StatusID != events.StatusFailure || x.Warden.Attrs["attempts"] != "1" {
				t.Errorf("snapshot_memory: %+v (a permanent failure is not retried)", x)
			}
		}
	}
	if finding == nil || finding.Policy.UID != "retry" || finding.Warden.Agent != agentA || finding.SeverityID != events.SeverityHigh {
		t.Fatalf("finding %+v", finding)
	}
}

func TestEngineTierDecidesWhatRunsAutomatically(t *testing.T) {
	for _, c := range []struct {
		tier tier.Tier
		want []string
	}{
		{tier.Foundation, nil},
		{tier.Advanced, []string{"revoke t1", "sessions " + agentA, "approval " + agentA + " retry"}},
	} {
		t.Run(c.tier.String(), func(t *testing.T) {
			f := &fakes{}
			e, rec := startEngine(t, f, engineOpts{rules: containRule, tier: c.tier})
			emitAll(t, e, deny(0, agentA, "x.y"), deny(s, agentA, "x.y"))
			if got := f.got(); !slices.Equal(got, c.want) {
				t.Fatalf("ran %v, want %v", got, c.want)
			}
			recommended := 0
			for _, r := range remediations(rec) {
				if r[len(r)-len("recommended"):] == "recommended" {
					recommended++
				}
			}
			if recommended != 6-len(c.want) {
				t.Fatalf("recorded %v", remediations(rec))
			}
		})
	}
}

func TestEngineActionsAreRetriedAndIdempotent(t *testing.T) {
	f := &fakes{failFirst: 2}
	e, rec := startEngine(t, f, engineOpts{rules: `{id: r, condition: 'reason == "tool_not_granted"', actions: [revoke_grant]}`})
	emitAll(t, e, deny(0, agentA, "x.y"))
	if got := f.got(); !slices.Equal(got, []string{"revoke t1"}) || f.attempts != 3 {
		t.Fatalf("calls %v after %d attempts", got, f.attempts)
	}
	// the same action on the same target again: not repeated
	emitAll(t, e, deny(s, agentA, "x.y"))
	if got := f.got(); len(got) != 1 {
		t.Fatalf("calls %v", got)
	}
	if got := remediations(rec); !slices.Equal(got, []string{"revoke_grant:done", "revoke_grant:already"}) {
		t.Fatalf("recorded %v", got)
	}
	// a transient failure that persists is recorded as failed after every attempt
	f2 := &fakes{err: errors.New("database locked")}
	e2, rec2 := startEngine(t, f2, engineOpts{rules: `{id: r, condition: 'reason == "tool_not_granted"', actions: [revoke_grant]}`})
	emitAll(t, e2, deny(0, agentA, "x.y"))
	if f2.attempts != len(retryDelays) || !slices.Equal(remediations(rec2), []string{"revoke_grant:failed"}) {
		t.Fatalf("attempts %d, recorded %v", f2.attempts, remediations(rec2))
	}
}

// An alert without a task revokes every open task of the agent; one
// without an agent either cannot contain anyone: the action fails,
// recorded, and the playbook carries on.
func TestEngineActionTargets(t *testing.T) {
	f := &fakes{}
	e, rec := startEngine(t, f, engineOpts{rules: `{id: r, condition: 'reason == "x"', actions: [revoke_grant, kill_sessions]}`})
	emitAll(t, e, ev{agent: agentA, reason: "x"})
	if got := f.got(); !slices.Equal(got, []string{"revoke all of " + agentA, "sessions " + agentA}) {
		t.Fatalf("calls %v", got)
	}
	emitAll(t, e, ev{reason: "x", uid: "no-agent"})
	if got := remediations(rec); !slices.Equal(got, []string{"revoke_grant:done", "kill_sessions:done", "revoke_grant:failed", "kill_sessions:failed"}) {
		t.Fatalf("recorded %v", got)
	}
}

// The fence: the moment a rule fires, the task (or agent) it will revoke
// counts as contained in this process, before the durable revocation;
// the fence comes down once the revocation is done, and stays up if it
// fails.
func TestFenceContainsBeforeTheDurableAction(t *testing.T) {
	f := &fakes{block: make(chan struct{})}
	e, _ := startEngine(t, f, engineOpts{tier: tier.Advanced, rules: `{id: r, condition: 'reason == "x"', actions: [revoke_grant]}`})
	if err := e.Emit(ctx, ev{agent: agentA, task: "t1", reason: "x"}.event()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if rule, ok := e.Contained(agentB, []string{"t0", "t1"}); ok && rule == "r" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not contained while the revocation is stuck")
		}
		time.Sleep(time.Millisecond)
	}
	if _, ok := e.Contained(agentA, []string{"t2"}); ok {
		t.Fatal("another task of the agent is contained")
	}
	stage := ContainedStage(e)
	id := spiffeid.RequireFromString(agentA)
	if d := stage.Run(&gateway.Call{Ctx: ctx, Tool: &gateway.Tool{ID: "x.y"}, Caller: &identity.Caller{ID: id}}); d != nil {
		t.Fatalf("a call with no task was denied: %+v", d)
	}
	close(f.block)
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := e.Sync(sctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Contained(agentA, []string{"t1"}); ok {
		t.Fatal("the fence stayed up after the revocation was done")
	}
	// a failing revocation keeps the fence up
	f2 := &fakes{err: errors.New("disk full")}
	e2, _ := startEngine(t, f2, engineOpts{tier: tier.Advanced, rules: `{id: r, condition: 'reason == "x"', actions: [revoke_grant]}`})
	emitAll(t, e2, ev{agent: agentA, task: "t1", reason: "x"})
	if _, ok := e2.Contained(agentA, []string{"t1"}); !ok {
		t.Fatal("the fence came down though the revocation failed")
	}
	// at Foundation nothing is revoked automatically, so nothing is fenced
	e3, _ := startEngine(t, &fakes{}, engineOpts{tier: tier.Foundation, rules: `{id: r, condition: 'reason == "x"', actions: [revoke_grant]}`})
	emitAll(t, e3, ev{agent: agentA, task: "t1", reason: "x"})
	if _, ok := e3.Contained(agentA, []string{"t1"}); ok {
		t.Fatal("Foundation fenced")
	}
}

// A webhook that hangs never delays containment: the grant is revoked at
// once, the notification is retried on its own and its failure recorded.
func TestSlowWebhookDoesNotBlockContainment(t *testing.T) {
	var hits atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	var releaseOnce sync.Once
	unhang := func() { releaseOnce.Do(func() { close(release) }) }
	defer unhang()
	// The webhook hangs far longer than containment may take: a revocation
	// that waited for it would show up as the grant still live below.
	n, err := NewNotifier(NotifierOptions{URL: srv.URL, Secret: []byte("0123456789abcdef0123"), Timeout: time.Minute,
		Attempts: 2, Backoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	nctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n.Start(nctx)
	var mu sync.Mutex
	var results []ActionResult
	f := &fakes{}
	e, rec := startEngine(t, f, engineOpts{notifier: n, rules: `{id: r, condition: 'reason == "tool_not_granted"', actions: [notify, revoke_grant]}`,
		onAction: func(_ Alert, r ActionResult) { mu.Lock(); results = append(results, r); mu.Unlock() }})
	emitAll(t, e, deny(0, agentA, "x.y"))
	if got := f.got(); !slices.Equal(got, []string{"revoke t1"}) {
		t.Fatalf("calls %v while the webhook hangs", got)
	}
	unhang() // the webhook now fails at once: the notification's failure is recorded
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if slices.Contains(remediations(rec), "notify:failed") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := remediations(rec); !slices.Equal(got, []string{"notify:queued", "revoke_grant:done", "notify:failed"}) {
		t.Fatalf("recorded %v", got)
	}
	if hits.Load() != 2 {
		t.Fatalf("webhook tried %d times, want 2", hits.Load())
	}
	_, failed, _ := n.Stats()
	if failed != 1 {
		t.Fatalf("failed %d", failed)
	}
}

// A restart in the middle of a window loses nothing: windows are written
// to the database (periodically, and at Close) and loaded by the next
// engine; a crash (no Close) loses at most the flush interval.
func TestWindowsSurviveRestart(t *testing.T) {
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const rule = `
id: slow
condition: reason == "tool_not_granted"
correlation: {type: event_count, group-by: [agent], timespan: 1h, condition: {gte: 3}}
actions: [revoke_grant]
---
id: seq
sequence: {by: [agent], maxspan: 1h, steps: [{condition: 'reason == "a"'}, {condition: 'reason == "b"'}]}
actions: [kill_sessions]
`
	f := &fakes{}
	e1, _ := startEngine(t, f, engineOpts{rules: rule, db: db, flush: 20 * time.Millisecond})
	emitAll(t, e1, deny(0, agentA, "x.y"), deny(10*m, agentA, "x.y"), ev{at: 11 * m, agent: agentA, reason: "a"})
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := e1.Close(cctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	e2, _ := startEngine(t, f, engineOpts{rules: rule, db: db, flush: 20 * time.Millisecond})
	emitAll(t, e2, deny(20*m, agentA, "x.y"), ev{at: 21 * m, agent: agentA, reason: "b"})
	if got := f.got(); !slices.Equal(got, []string{"revoke t1", "sessions " + agentA}) {
		t.Fatalf("after restart: %v", got)
	}

	// crash: the first engine is never closed; its periodic flush is what
	// the second one finds
	f3 := &fakes{}
	e3, _ := startEngine(t, f3, engineOpts{rules: rule, db: db, flush: 20 * time.Millisecond})
	emitAll(t, e3, deny(30*m, agentB, "x.y"), deny(31*m, agentB, "x.y"))
	time.Sleep(150 * time.Millisecond) // several flush intervals
	f4 := &fakes{}
	e4, _ := startEngine(t, f4, engineOpts{rules: rule, db: db, flush: 20 * time.Millisecond})
	emitAll(t, e4, deny(32*m, agentB, "x.y"))
	if got := f4.got(); !slices.Equal(got, []string{"revoke t1"}) {
		t.Fatalf("after a crash: %v", got)
	}

	// a changed rule does not inherit the old rule's windows
	f5 := &fakes{}
	e5, _ := startEngine(t, f5, engineOpts{rules: `
id: slow
condition: reason == "tool_not_granted"
correlation: {type: event_count, group-by: [agent], timespan: 1h, condition: {gte: 4}}
actions: [revoke_grant]
`, db: db})
	emitAll(t, e5, deny(40*m, agentB, "x.y"), deny(41*m, agentB, "x.y"))
	if got := f5.got(); len(got) != 0 {
		t.Fatalf("changed rule fired on old state: %v", got)
	}
}

// An event flood (100k events/s offered): Emit never waits longer than
// its budget, memory stays bounded, the drops are counted and make the
// flooding agent count as unwatched, and detection works again after.
func TestEventFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("flood")
	}
	f := &fakes{}
	rules := builtinYAML(t) + "\n---\n" + `{id: canary, condition: 'reason == "canary"', actions: [kill_sessions]}`
	const budget = 200 * time.Microsecond
	e, _ := startEngine(t, f, engineOpts{rules: rules, queue: 4096, budget: budget, tier: tier.Advanced})
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	const rate, dur = 100_000, time.Second
	tools := []string{"files.read", "email.send", "web.fetch", "db.query"}
	flood := make([]events.Event, rate*dur/time.Second)
	for i := range flood {
		flood[i] = ev{at: time.Duration(i) * 10 * time.Microsecond, agent: fmt.Sprintf("spiffe://example.org/agent/f%d", i%50), task: fmt.Sprintf("t%d", i%500),
			tool: tools[i%len(tools)], reason: []string{"allow", "allow", "allow", "tool_not_granted"}[i%4]}.event()
	}
	// four emitters, as a gateway has many calls in flight, each paced to
	// a quarter of the offered rate
	const emitters = 4
	lats := make([][]time.Duration, emitters)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range emitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := flood[w*len(flood)/emitters : (w+1)*len(flood)/emitters]
			lat := make([]time.Duration, 0, len(mine))
			for i := 0; i < len(mine); {
				for time.Since(start) < time.Duration(i)*time.Second/(rate/emitters) {
					runtime.Gosched()
				}
				for range 50 {
					t0 := time.Now()
					_ = e.Emit(ctx, mine[i])
					lat = append(lat, time.Since(t0))
					i++
				}
			}
			lats[w] = lat
		}()
	}
	wg.Wait()
	sent := len(flood)
	var lat []time.Duration
	for _, l := range lats {
		lat = append(lat, l...)
	}
	offered := float64(sent) / time.Since(start).Seconds()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p99, p999, worst := lat[len(lat)*99/100], lat[len(lat)*999/1000], lat[len(lat)-1]
	st := e.Stats()
	t.Logf("offered %.0f events/s; Emit p99 %v p99.9 %v max %v; processed %d, dropped %d, queued %d", offered, p99, p999, worst, st.Processed, st.Dropped, st.Queued)
	slack := time.Millisecond
	if raceEnabled {
		slack = 25 * time.Millisecond
	}
	if p99 > budget+slack {
		t.Errorf("Emit p99 %v exceeds the budget %v", p99, budget)
	}
	if st.Dropped > 0 {
		unwatched := 0
		for i := range 50 {
			if e.Behind(fmt.Sprintf("spiffe://example.org/agent/f%d", i)) >= time.Minute {
				unwatched++
			}
		}
		if unwatched == 0 {
			t.Errorf("%d events were dropped and no agent counts as unwatched", st.Dropped)
		}
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 256<<20 {
		t.Errorf("heap grew by %d MiB during the flood", grew>>20)
	}
	// detection still works
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := e.Sync(sctx); err != nil {
		t.Fatal(err)
	}
	emitAll(t, e, ev{agent: agentB, reason: "canary"})
	if got := f.got(); !slices.Contains(got, "sessions "+agentB) {
		t.Fatalf("after the flood the canary rule did not act: %v", got)
	}
	if e.Behind(agentB) != 0 {
		t.Fatalf("idle agent behind %v", e.Behind(agentB))
	}
}

func builtinYAML(t testing.TB) string {
	src, err := BuiltinSource()
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(src))
	for n := range src {
		names = append(names, n)
	}
	sort.Strings(names)
	out := ""
	for i, n := range names {
		if i > 0 {
			out += "\n---\n"
		}
		out += string(src[n])
	}
	return out
}

// While an agent's events or alerts wait, the backlog stage denies its
// calls at tiers that say so, and only its own.
func TestBacklogStageDeniesUnwatchedAgent(t *testing.T) {
	f := &fakes{block: make(chan struct{})}
	e, rec := startEngine(t, f, engineOpts{rules: `{id: r, condition: 'reason == "x"', actions: [revoke_grant]}`})
	if err := e.Emit(ctx, ev{agent: agentA, task: "t1", reason: "x"}.event()); err != nil {
		t.Fatal(err)
	}
	call := func(agent string, tr tier.Tier) *gateway.Call {
		id := spiffeid.RequireFromString(agent)
		return &gateway.Call{Ctx: ctx, Tool: &gateway.Tool{ID: "files.read", Labels: []string{"reads"}},
			Caller: &identity.Caller{ID: id, Name: "a", Record: &identity.Record{ID: id, Tier: tr}}}
	}
	time.Sleep(300 * time.Millisecond) // the revocation is stuck: A is behind
	adv := BacklogStage(e, tier.Advanced, rec)
	opt := BacklogStage(e, tier.Foundation, rec)
	if d := adv.Run(call(agentA, tier.Foundation)); d != nil {
		t.Fatalf("Advanced denied at 300ms behind (limit 1s): %+v", d)
	}
	if d := opt.Run(call(agentA, tier.Optimized)); d == nil || d.Code != CodeBacklog {
		t.Fatalf("an Optimized agent 300ms behind was not denied: %+v", d)
	}
	if d := opt.Run(call(agentA, tier.Foundation)); d != nil {
		t.Fatalf("Foundation denied: %+v", d)
	}
	if d := opt.Run(call(agentB, tier.Optimized)); d != nil {
		t.Fatalf("an agent with nothing pending was denied: %+v", d)
	}
	if len(rec.Find(CodeBacklog)) != 1 {
		t.Fatalf("the denial was not recorded")
	}
	close(f.block)
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := e.Sync(sctx); err != nil {
		t.Fatal(err)
	}
	if d := opt.Run(call(agentA, tier.Optimized)); d != nil {
		t.Fatalf("still denied after detection caught up: %+v", d)
	}
	_ = io.Discard
}
