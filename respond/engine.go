package respond

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/store"
	"github.com/warden-run/warden/tier"
)

// feature is the name respond's own events carry.
const feature = "respond"

// CodeBacklog denies a call whose agent's events detection has not caught
// up with (tiers whose preset sets DetectionMaxBehind).
const CodeBacklog = "detection_backlog"

// dropPenalty is how long an agent counts as unwatched after one of its
// events was dropped (the queue was full beyond the emit budget): its
// windows are incomplete, so tiers that deny on backlog deny it.
const dropPenalty = time.Minute

// Options configure an Engine.
type Options struct {
	Rules *RuleSet
	// DB persists windows so that they survive a restart; nil keeps them
	// in memory only.
	DB *store.DB
	// Record receives the engine's findings (2004) and actions (7001): the
	// audit log, not the stream the engine itself reads.
	Record  events.Sink
	Actions Actions
	// Notifier delivers notify actions; nil makes them fail (recorded).
	Notifier *Notifier
	// Labels gives a tool's risk labels (the gateway's catalog).
	Labels func(tool string) ([]string, bool)
	// Preset is the tier preset that governs an agent: which actions run
	// automatically (see Automatic). nil: Foundation.
	Preset func(agent string) tier.Preset
	// QueueSize bounds events waiting for detection (default 16384).
	QueueSize int
	// EmitBudget bounds how long Emit waits for room in a full queue
	// before dropping the event (default 1ms; the gateway's call path
	// never waits longer).
	EmitBudget time.Duration
	// FlushInterval is how often changed windows are written to the
	// database (default 500ms): a crash loses at most this much.
	FlushInterval time.Duration
	// MaxGroups bounds the groups one rule keeps (default 10,000).
	MaxGroups int
	Log       *slog.Logger
	Now       func() time.Time
	// OnAlert and OnAction observe what the engine does (tests, metrics).
	OnAlert  func(Alert)
	OnAction func(Alert, ActionResult)
}

// item is one queued event, or a barrier.
type item struct {
	ev      events.Event
	at      time.Duration // received, since the engine's epoch (monotonic)
	agent   string
	barrier chan struct{}
}

// Engine evaluates rules over the event stream and runs their playbooks.
// It is an events.Sink: Emit only queues (never longer than EmitBudget), a
// worker evaluates, an action runner contains, a notifier posts.
type Engine struct {
	o     Options
	log   *slog.Logger
	epoch time.Time
	q     chan item
	acts  chan Alert
	ev    *evaluator

	fence     sync.Map      // "task "+id or "agent "+id -> fenceEntry: contained here before the durable action is done
	pending   sync.Map      // agent -> *atomic.Int64: events and alerts not yet handled
	drops     sync.Map      // agent -> *atomic.Int64: unix nanos of the last drop
	head      atomic.Int64  // received time of the event being evaluated (0: idle)
	actHead   atomic.Int64  // received time of the alert being acted on (0: idle)
	dropped   atomic.Uint64 // events dropped
	processed atomic.Uint64
	alerts    atomic.Uint64
	closed    atomic.Bool

	statsMu sync.Mutex
	stats   []RuleStats

	done     map[string]time.Time // idempotence: action key -> done at (action runner only)
	persistQ chan struct{}
	pmu      sync.Mutex
	pend     map[winKey][]byte // windows to write (nil value: delete)
	lastSwp  time.Time

	stop    context.CancelFunc
	wg      sync.WaitGroup
	actWG   sync.WaitGroup
	started bool
}

type winKey struct{ rule, key string }

// New builds an engine and loads its persisted windows. It does not run
// until Start.
func New(ctx context.Context, o Options) (*Engine, error) {
	if o.Rules == nil {
		return nil, errors.New("respond: no rule set")
	}
	if o.Record == nil {
		return nil, errors.New("respond: no sink to record findings and actions")
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 16384
	}
	if o.EmitBudget == 0 {
		o.EmitBudget = time.Millisecond
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 500 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Preset == nil {
		o.Preset = func(string) tier.Preset { return tier.For(tier.Foundation) }
	}
	e := &Engine{o: o, log: o.Log, epoch: time.Now(), q: make(chan item, o.QueueSize), acts: make(chan Alert, 1024),
		done: map[string]time.Time{}, persistQ: make(chan struct{}, 1), pend: map[winKey][]byte{}}
	e.ev = newEvaluator(o.Rules, o.Labels, o.MaxGroups, o.Log)
	if o.DB != nil {
		if err := migrate(ctx, o.DB); err != nil {
			return nil, err
		}
		if err := e.load(ctx); err != nil {
			return nil, err
		}
	}
	e.snapshotStats()
	return e, nil
}

// Start runs the worker, the action runner and the persister until Close.
func (e *Engine) Start(ctx context.Context) {
	ctx, e.stop = context.WithCancel(context.WithoutCancel(ctx))
	e.started = true
	e.wg.Add(1)
	go func() { defer e.wg.Done(); e.work(ctx) }()
	e.actWG.Add(1)
	go func() { defer e.actWG.Done(); e.actLoop(ctx) }()
	if e.o.DB != nil {
		e.wg.Add(1)
		go func() { defer e.wg.Done(); e.persistLoop(ctx) }()
	}
}

func (e *Engine) since() time.Duration { return time.Since(e.epoch) }

func (e *Engine) counter(m *sync.Map, agent string) *atomic.Int64 {
	if v, ok := m.Load(agent); ok {
		return v.(*atomic.Int64)
	}
	v, _ := m.LoadOrStore(agent, new(atomic.Int64))
	return v.(*atomic.Int64)
}

// Emit queues an event for detection. It waits at most EmitBudget for room
// and otherwise drops the event (counted; the agent is then unwatched, and
// tiers that deny on backlog deny its calls). It never returns an error:
// recording is the audit log's job, and a full detection queue must not
// make the record fail.
func (e *Engine) Emit(ctx context.Context, ev events.Event) error {
	if e.closed.Load() {
		return nil
	}
	agent := agentOf(&ev)
	it := item{ev: ev, at: e.since(), agent: agent}
	var pc *atomic.Int64
	if agent != "" {
		pc = e.counter(&e.pending, agent)
		pc.Add(1)
	}
	select {
	case e.q <- it:
		return nil
	default:
	}
	if e.o.EmitBudget > 0 {
		t := time.NewTimer(e.o.EmitBudget)
		defer t.Stop()
		select {
		case e.q <- it:
			return nil
		case <-t.C:
		case <-ctx.Done():
		}
	}
	if pc != nil {
		pc.Add(-1)
		e.counter(&e.drops, agent).Store(time.Now().UnixNano())
	}
	if n := e.dropped.Add(1); n == 1 || n%10000 == 0 {
		e.log.Error("detection queue full: events dropped; the affected agents count as unwatched", "dropped", n)
	}
	return nil
}

// Behind reports how far detection lags for an agent: zero when every
// event of the agent has been evaluated and every alert acted on;
// otherwise the age of the oldest work still in hand. An agent one of whose
// events was dropped in the last minute is reported a minute behind.
func (e *Engine) Behind(agent string) time.Duration {
	if v, ok := e.drops.Load(agent); ok {
		if t := v.(*atomic.Int64).Load(); t != 0 && time.Since(time.Unix(0, t)) < dropPenalty {
			return dropPenalty
		}
	}
	v, ok := e.pending.Load(agent)
	if !ok || v.(*atomic.Int64).Load() <= 0 {
		return 0
	}
	now := e.since()
	var lag time.Duration
	if h := e.head.Load(); h != 0 {
		lag = now - time.Duration(h)
	}
	if h := e.actHead.Load(); h != 0 {
		lag = max(lag, now-time.Duration(h))
	}
	if lag == 0 && len(e.q) > 0 {
		// queued but the worker has not picked anything up yet: it is
		// behind by at least the queue's age, which it does not know;
		// say a little rather than nothing.
		lag = time.Microsecond
	}
	return lag
}

// Sync waits until every event queued before it has been evaluated and
// its alerts' actions taken.
func (e *Engine) Sync(ctx context.Context) error {
	b := make(chan struct{})
	select {
	case e.q <- item{barrier: b}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// work is the worker: it owns the evaluator.
func (e *Engine) work(ctx context.Context) {
	tick := time.NewTicker(e.o.FlushInterval)
	defer tick.Stop()
	var alerts []Alert
	for {
		select {
		case it := <-e.q:
			alerts = e.handle(it, alerts)
		case <-tick.C:
			e.flush(false)
		case <-ctx.Done():
			// Close: evaluate what is queued, then write the windows.
			for {
				select {
				case it := <-e.q:
					alerts = e.handle(it, alerts)
					continue
				default:
				}
				break
			}
			e.flush(true)
			close(e.acts)
			return
		}
	}
}

func (e *Engine) handle(it item, alerts []Alert) []Alert {
	if it.barrier != nil {
		// everything before the barrier is evaluated; wait for its
		// actions too by passing the barrier through the action runner.
		e.acts <- Alert{barrier: it.barrier}
		return alerts
	}
	e.head.Store(int64(it.at))
	alerts = e.ev.process(&it.ev, alerts[:0])
	for i := range alerts {
		a := alerts[i]
		a.received = e.epoch.Add(it.at)
		e.alerts.Add(1)
		if a.Agent != "" {
			e.counter(&e.pending, a.Agent).Add(1)
		}
		e.raiseFence(a)
		if e.o.OnAlert != nil {
			e.o.OnAlert(a)
		}
		// The action runner drains this channel until the worker closes
		// it (after draining the queue at Close): a containment is never
		// lost, and it is never run from two goroutines.
		e.acts <- a
	}
	if it.agent != "" {
		e.counter(&e.pending, it.agent).Add(-1)
	}
	e.processed.Add(1)
	if len(e.q) == 0 {
		e.head.Store(0)
	}
	return alerts
}

// actLoop runs the playbooks of fired rules, in order.
func (e *Engine) actLoop(ctx context.Context) {
	for a := range e.acts {
		if a.barrier != nil {
			close(a.barrier)
			continue
		}
		e.actHead.Store(int64(a.received.Sub(e.epoch)))
		e.act(context.WithoutCancel(ctx), a)
		if a.Agent != "" {
			e.counter(&e.pending, a.Agent).Add(-1)
		}
		if len(e.acts) == 0 {
			e.actHead.Store(0)
		}
	}
}

// act runs an alert's actions. Containment actions run here, with retries;
// notify is handed to the notifier and never waited for. The finding is
// recorded with the first action's record, so that the first containment
// does not wait for the audit log.
func (e *Engine) act(ctx context.Context, a Alert) {
	p := e.o.Preset(a.Agent)
	reason := fmt.Sprintf("rule %s (%s)", a.Rule, a.Title)
	recorded := false
	for _, act := range a.Actions {
		start := time.Now()
		res := ActionResult{Alert: a.ID, Rule: a.Rule, Action: act.Type}
		tgt, err := target(a, act.Type)
		res.Target = tgt
		switch {
		case err != nil:
			res.Outcome, res.Error = OutcomeFailed, err.Error()
		case !Automatic(p, act.Type):
			res.Outcome = OutcomeRecommended
			res.Detail = fmt.Sprintf("tier %s does not run %s automatically", p.Tier, act.Type)
		case act.Type == ActNotify:
			res = e.notify(a, res)
		default:
			k := idemKey(act.Type, tgt)
			if t, ok := e.done[k]; ok && time.Since(t) < time.Hour && act.Type != ActRequireApproval {
				res.Outcome, res.Detail = OutcomeAlready, "done at "+t.UTC().Format(time.RFC3339Nano)
				e.lowerFence(act.Type, tgt)
				break
			}
			res.Detail, res.Attempts, err = e.o.Actions.run(ctx, a, act, tgt, reason, e.o.Now)
			if err != nil {
				res.Outcome, res.Error = OutcomeFailed, err.Error()
				e.log.Error("containment action failed; the fence stays up", "rule", a.Rule, "action", act.Type, "target", tgt, "attempts", res.Attempts, "err", err)
			} else {
				res.Outcome = OutcomeDone
				e.done[k] = time.Now()
				if !a.received.IsZero() {
					res.SinceEvent = time.Since(a.received)
				}
				e.lowerFence(act.Type, tgt)
			}
		}
		res.Took = time.Since(start)
		if !recorded {
			recorded = true
			if err := e.o.Record.Emit(ctx, findingEvent(a)); err != nil {
				e.log.Error("could not record a detection finding", "rule", a.Rule, "err", err)
			}
		}
		e.record(ctx, a, res)
	}
	if !recorded {
		if err := e.o.Record.Emit(ctx, findingEvent(a)); err != nil {
			e.log.Error("could not record a detection finding", "rule", a.Rule, "err", err)
		}
	}
	if len(e.done) > 10000 {
		for k, t := range e.done {
			if time.Since(t) > time.Hour {
				delete(e.done, k)
			}
		}
	}
}

// The fence: the moment a rule fires, the worker marks what its automatic
// revoke_grant or disable_agent will contain (the task, or the agent) as
// contained in this process, so that the gateway's contained stage denies
// it at once, before the durable action (a database transaction and an
// audit record) is done. The fence comes down when the durable action
// succeeds (the grant state or the registry then says the same), and stays
// up for fenceTTL when it fails: containment fails closed.

// fenceTTL bounds a fence whose durable action failed.
const fenceTTL = time.Hour

type fenceEntry struct {
	rule  string
	until time.Time
}

func fenceKey(t ActionType, tgt string) (string, bool) {
	switch t {
	case ActRevokeGrant:
		if agent, ok := strings.CutPrefix(tgt, agentTarget); ok {
			return "agent " + agent, true
		}
		return "task " + tgt, true
	case ActDisableAgent:
		return "agent " + tgt, true
	}
	return "", false
}

func (e *Engine) raiseFence(a Alert) {
	var p *tier.Preset
	for _, act := range a.Actions {
		if act.Type != ActRevokeGrant && act.Type != ActDisableAgent {
			continue
		}
		if p == nil {
			pp := e.o.Preset(a.Agent)
			p = &pp
		}
		if !Automatic(*p, act.Type) {
			continue
		}
		tgt, err := target(a, act.Type)
		if err != nil {
			continue
		}
		if k, ok := fenceKey(act.Type, tgt); ok {
			e.fence.Store(k, fenceEntry{rule: a.Rule, until: time.Now().Add(fenceTTL)})
		}
	}
}

func (e *Engine) lowerFence(t ActionType, tgt string) {
	if k, ok := fenceKey(t, tgt); ok {
		e.fence.Delete(k)
	}
}

// Contained reports whether detection has contained the agent, or one of
// the tasks (a call's task and its ancestors), in this process, and by
// which rule.
func (e *Engine) Contained(agent string, tasks []string) (string, bool) {
	check := func(k string) (string, bool) {
		v, ok := e.fence.Load(k)
		if !ok {
			return "", false
		}
		f := v.(fenceEntry)
		if time.Now().After(f.until) {
			e.fence.CompareAndDelete(k, v)
			return "", false
		}
		return f.rule, true
	}
	if agent != "" {
		if r, ok := check("agent " + agent); ok {
			return r, true
		}
	}
	for _, t := range tasks {
		if r, ok := check("task " + t); ok {
			return r, true
		}
	}
	return "", false
}

func (e *Engine) record(ctx context.Context, a Alert, res ActionResult) {
	if err := e.o.Record.Emit(ctx, remediationEvent(a, res)); err != nil {
		e.log.Error("could not record a response action", "rule", a.Rule, "action", res.Action, "err", err)
	}
	if e.o.OnAction != nil {
		e.o.OnAction(a, res)
	}
}

// notify queues the alert for the webhook; the delivery's result is
// recorded as a second remediation event when it is known.
func (e *Engine) notify(a Alert, res ActionResult) ActionResult {
	if e.o.Notifier == nil {
		res.Outcome, res.Error = OutcomeFailed, "no webhook is configured (respond.notify)"
		return res
	}
	m := AlertMessage(a)
	m.Done = func(attempts int, err error) {
		r := ActionResult{Alert: a.ID, Rule: a.Rule, Action: ActNotify, Target: a.ID, Attempts: attempts, Outcome: OutcomeDone, Detail: "delivered"}
		if err != nil {
			r.Outcome, r.Error, r.Detail = OutcomeFailed, err.Error(), ""
		}
		e.record(context.Background(), a, r)
	}
	e.o.Notifier.Send(m)
	res.Outcome, res.Detail = OutcomeQueued, "handed to the webhook"
	return res
}

// AlertMessage renders an alert as a notification.
func AlertMessage(a Alert) Message {
	acts := make([]string, len(a.Actions))
	for i, x := range a.Actions {
		acts[i] = string(x.Type)
	}
	return Message{
		ID:   a.ID,
		Text: fmt.Sprintf(":rotating_light: Warden rule *%s* fired (%s): %s", a.Rule, a.Level, a.Title),
		Fields: map[string]string{"Agent": a.Agent, "Task": a.Task, "Tool": a.Tool, "Group": a.Key,
			"Value": fmt.Sprintf("%g", a.Value), "Actions": strings.Join(acts, ", "), "Time": a.Time.UTC().Format(time.RFC3339)},
		Order:  []string{"Agent", "Task", "Tool", "Group", "Value", "Actions", "Time"},
		Warden: a,
	}
}

// Close stops taking events, evaluates what is queued, writes the windows
// and lets queued actions finish (bounded by ctx).
func (e *Engine) Close(ctx context.Context) error {
	if !e.closed.CompareAndSwap(false, true) {
		return nil
	}
	if !e.started {
		return nil
	}
	e.stop()
	done := make(chan struct{})
	go func() { e.wg.Wait(); e.actWG.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("respond: closing: %w", ctx.Err())
	}
}

// Stats is what the engine has done.
type Stats struct {
	Processed uint64      `json:"processed"`
	Dropped   uint64      `json:"dropped"`
	Alerts    uint64      `json:"alerts"`
	Queued    int         `json:"queued"`
	Rules     []RuleStats `json:"rules"`
}

// Stats returns counters (per-rule figures as of the last flush).
func (e *Engine) Stats() Stats {
	e.statsMu.Lock()
	rs := append([]RuleStats(nil), e.stats...)
	e.statsMu.Unlock()
	return Stats{Processed: e.processed.Load(), Dropped: e.dropped.Load(), Alerts: e.alerts.Load(), Queued: len(e.q), Rules: rs}
}

func (e *Engine) snapshotStats() {
	out := make([]RuleStats, 0, len(e.ev.states))
	for _, r := range e.o.Rules.Rules {
		st := e.ev.states[r.ID]
		out = append(out, RuleStats{Rule: r.ID, Evaluations: st.evals, Fired: st.fired, Errors: st.errors, Groups: len(st.groups)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Rule < out[j].Rule })
	e.statsMu.Lock()
	e.stats = out
	e.statsMu.Unlock()
}
