package respond

import (
	"hash/maphash"
	"log/slog"
	"time"

	"github.com/warden-run/warden/events"
)

// evaluator applies a rule set to events, one at a time, keeping every
// rule's windows. It is not safe for concurrent use: the engine's worker
// owns it (and a replay owns its own).
type evaluator struct {
	rules     *RuleSet
	states    map[string]*ruleState // by rule id
	byIdx     []*ruleState          // by rule index (the hot path)
	act       activation
	maxGroups int
	log       *slog.Logger
	seen      [2]map[uint64]struct{} // hashes of event ids, two generations
	seed      maphash.Seed
	matched   []bool
	keyBuf    []byte
	dupes     uint64
}

func newEvaluator(rs *RuleSet, labels func(string) ([]string, bool), maxGroups int, log *slog.Logger) *evaluator {
	if maxGroups <= 0 {
		maxGroups = defaultMaxGroups
	}
	ev := &evaluator{rules: rs, states: map[string]*ruleState{}, maxGroups: maxGroups, log: log,
		seen: [2]map[uint64]struct{}{{}, {}}, seed: maphash.MakeSeed()}
	ev.act.labels = labels
	for _, r := range rs.Rules {
		st := newRuleState(r)
		st.maxGroups = maxGroups
		if c := r.valueCapacity(); c > 0 {
			// distinct-value windows: at most maxValuesPerRule values in all
			st.maxGroups = max(1, min(maxGroups, maxValuesPerRule/c))
		}
		ev.states[r.ID] = st
		ev.byIdx = append(ev.byIdx, st)
	}
	return ev
}

// duplicate reports whether the event id was seen recently (an event
// delivered twice counts once).
func (ev *evaluator) duplicate(id string) bool {
	if id == "" {
		return false
	}
	h := maphash.String(ev.seed, id)
	if _, ok := ev.seen[0][h]; ok {
		return true
	}
	if _, ok := ev.seen[1][h]; ok {
		return true
	}
	if len(ev.seen[0]) >= dedupGeneration {
		ev.seen[1], ev.seen[0] = ev.seen[0], make(map[uint64]struct{}, dedupGeneration)
	}
	ev.seen[0][h] = struct{}{}
	return false
}

// process applies every rule to one event and returns the alerts it
// completed. A rule whose expression fails on the event is skipped for
// that event; the others carry on.
func (ev *evaluator) process(e *events.Event, out []Alert) []Alert {
	if ev.duplicate(e.Metadata.UID) {
		ev.dupes++
		return out
	}
	if f := featureOf(e); f == feature {
		return out // the engine's own findings and actions: never re-detected (no loops)
	}
	ev.act.reset(e)
	now := e.Time
	for _, r := range ev.rules.candidates(int64(e.ClassUID)) {
		st := ev.byIdx[r.idx]
		st.evals++
		a, err := ev.apply(r, st, now)
		if err != nil {
			st.errors++
			if st.errors == 1 || st.errors%1000 == 0 {
				ev.log.Warn("a detection rule failed on an event; the rule skips it and carries on",
					"rule", r.ID, "errors", st.errors, "event", e.Metadata.UID, "err", err)
			}
			continue
		}
		if a != nil {
			st.fired++
			out = append(out, *a)
		}
	}
	return out
}

// apply runs one rule on the current event.
func (ev *evaluator) apply(r *Rule, st *ruleState, now int64) (*Alert, error) {
	a := &ev.act
	if r.Kind == KindSequence {
		return ev.applySequence(r, st, now)
	}
	ok, err := r.cond.matches(a)
	if err != nil || !ok {
		return nil, err
	}
	key, ok, err := ev.key(r)
	if err != nil || !ok {
		return nil, err
	}
	span := r.span.Milliseconds()
	var value float64
	fire := false
	var g *group
	switch r.Kind {
	case KindSingle:
		if r.suppress > 0 {
			g = st.get(key, now, st.maxGroups)
		}
		fire = true
	case KindEventCount, KindValueSum:
		v := 1.0
		if r.Kind == KindValueSum {
			if v, err = r.field.num(a); err != nil {
				return nil, err
			}
		}
		g = st.get(key, now, st.maxGroups)
		value = g.add(now, v, span)
		fire = value > r.threshold || (!r.strict && value >= r.threshold)
	case KindValueCount, KindNewValue:
		s, err := r.field.str(a)
		if err != nil {
			return nil, err
		}
		g = st.get(key, now, st.maxGroups)
		isNew, n := g.see(now, s, span, r.valueCapacity())
		value = float64(n)
		if r.Kind == KindNewValue {
			fire = isNew
		} else {
			fire = value > r.threshold || (!r.strict && value >= r.threshold)
		}
	}
	if g != nil {
		g.last = now
		st.touch(g)
	}
	return ev.fire(r, g, key, value, fire, now), nil
}

func (ev *evaluator) applySequence(r *Rule, st *ruleState, now int64) (*Alert, error) {
	a := &ev.act
	if cap(ev.matched) < len(r.steps) {
		ev.matched = make([]bool, len(r.steps))
	}
	matched := ev.matched[:len(r.steps)]
	any := false
	for i, s := range r.steps {
		ok, err := s.matches(a)
		if err != nil {
			return nil, err
		}
		matched[i] = ok
		any = any || ok
	}
	until := false
	if r.until != nil {
		var err error
		if until, err = r.until.matches(a); err != nil {
			return nil, err
		}
	}
	if !any && !until {
		return nil, nil
	}
	key, ok, err := ev.key(r)
	if err != nil || !ok {
		return nil, err
	}
	if until {
		if g, ok := st.groups[string(key)]; ok {
			g.reset(r.Kind)
			g.last = now
			st.touch(g)
		}
		return nil, nil
	}
	g := st.get(key, now, st.maxGroups)
	done := g.step(now, matched, r.span.Milliseconds())
	g.last = now
	st.touch(g)
	return ev.fire(r, g, key, float64(len(r.steps)), done, now), nil
}

// fire turns a met condition into an alert unless the group is suppressed.
func (ev *evaluator) fire(r *Rule, g *group, kb []byte, value float64, met bool, now int64) *Alert {
	if !met {
		return nil
	}
	if g != nil {
		if now < g.quiet {
			return nil // de-duplicated: the group fired within the suppression period
		}
		g.reset(r.Kind)
		if r.suppress > 0 {
			g.quiet = now + r.suppress.Milliseconds()
		}
	}
	e := ev.act.e
	w := e.Warden
	if w == nil {
		w = &events.Warden{}
	}
	key := ""
	if g != nil {
		key = g.key
	} else {
		key = string(kb)
	}
	return &Alert{
		ID: events.NewID(), Rule: r.ID, Title: r.Title, Level: r.Level, Severity: r.Severity, Kind: r.Kind,
		Key: key, Value: value, Time: time.UnixMilli(e.Time), Trigger: e.Metadata.UID,
		Agent: agentOf(e), Task: taskOf(e), Session: sessionOf(e), Tool: toolOf(e), Grant: w.Grant,
		Actions: r.Actions,
	}
}

// key computes the rule's group key for the current event into a buffer
// the evaluator reuses (a group's key is copied only when the group is
// created). Single-event rules without group-by are keyed by agent and
// task (for suppression). An event lacking one of the group-by values is
// not counted (ok false).
func (ev *evaluator) key(r *Rule) ([]byte, bool, error) {
	a := &ev.act
	b := ev.keyBuf[:0]
	defer func() { ev.keyBuf = b[:0] }()
	if len(r.groupBy) == 0 {
		if r.Kind == KindSingle {
			b = append(b, "agent="...)
			b = append(b, agentOf(a.e)...)
			b = append(b, ",task="...)
			b = append(b, taskOf(a.e)...)
		}
		return b, true, nil
	}
	for i, k := range r.groupBy {
		s, err := k.str(a)
		if err != nil {
			return nil, false, err
		}
		if s == "" {
			return nil, false, nil
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, k.src...)
		b = append(b, '=')
		b = append(b, s...)
	}
	return b, true, nil
}

// RuleStats is what one rule has done since the engine started.
type RuleStats struct {
	Rule        string `json:"rule"`
	Evaluations uint64 `json:"evaluations"`
	Fired       uint64 `json:"fired"`
	Errors      uint64 `json:"errors"`
	Groups      int    `json:"groups"`
}
