package respond

import (
	"log/slog"
	"strings"
	"time"

	"github.com/warden-run/warden/events"
)

// evaluator applies a rule set to events, one at a time, keeping every
// rule's windows. It is not safe for concurrent use: the engine's worker
// owns it (and a replay owns its own).
type evaluator struct {
	rules     *RuleSet
	states    map[string]*ruleState // by rule id
	act       activation
	maxGroups int
	log       *slog.Logger
	seen      [2]map[string]struct{} // event ids, two generations
	matched   []bool
	keyParts  []string
	dupes     uint64
}

func newEvaluator(rs *RuleSet, labels func(string) ([]string, bool), maxGroups int, log *slog.Logger) *evaluator {
	if maxGroups <= 0 {
		maxGroups = defaultMaxGroups
	}
	ev := &evaluator{rules: rs, states: map[string]*ruleState{}, maxGroups: maxGroups, log: log,
		seen: [2]map[string]struct{}{{}, {}}}
	ev.act.labels = labels
	for _, r := range rs.Rules {
		ev.states[r.ID] = newRuleState(r)
	}
	return ev
}

// duplicate reports whether the event id was seen recently (an event
// delivered twice counts once).
func (ev *evaluator) duplicate(id string) bool {
	if id == "" {
		return false
	}
	if _, ok := ev.seen[0][id]; ok {
		return true
	}
	if _, ok := ev.seen[1][id]; ok {
		return true
	}
	if len(ev.seen[0]) >= dedupGeneration {
		ev.seen[1], ev.seen[0] = ev.seen[0], make(map[string]struct{}, dedupGeneration)
	}
	ev.seen[0][id] = struct{}{}
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
		st := ev.states[r.ID]
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
			g = st.get(key, now, ev.maxGroups)
		}
		fire = true
	case KindEventCount, KindValueSum:
		v := 1.0
		if r.Kind == KindValueSum {
			if v, err = r.field.num(a); err != nil {
				return nil, err
			}
		}
		g = st.get(key, now, ev.maxGroups)
		value = g.add(now, v, span)
		fire = value > r.threshold || (!r.strict && value >= r.threshold)
	case KindValueCount, KindNewValue:
		s, err := r.field.str(a)
		if err != nil {
			return nil, err
		}
		g = st.get(key, now, ev.maxGroups)
		capacity := maxDistinct
		if r.Kind == KindValueCount {
			capacity = min(maxDistinct, int(r.threshold)+1)
		}
		isNew, n := g.see(now, s, span, capacity)
		value = float64(n)
		if r.Kind == KindNewValue {
			fire = isNew
		} else {
			fire = value > r.threshold || (!r.strict && value >= r.threshold)
		}
	}
	if g != nil {
		g.last = now
		st.dirty[key] = true
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
		if g, ok := st.groups[key]; ok {
			g.reset(r.Kind)
			g.last = now
			st.dirty[key] = true
		}
		return nil, nil
	}
	g := st.get(key, now, ev.maxGroups)
	done := g.step(now, matched, r.span.Milliseconds())
	g.last = now
	st.dirty[key] = true
	return ev.fire(r, g, key, float64(len(r.steps)), done, now), nil
}

// fire turns a met condition into an alert unless the group is suppressed.
func (ev *evaluator) fire(r *Rule, g *group, key string, value float64, met bool, now int64) *Alert {
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
	return &Alert{
		ID: events.NewID(), Rule: r.ID, Title: r.Title, Level: r.Level, Severity: r.Severity, Kind: r.Kind,
		Key: key, Value: value, Time: time.UnixMilli(e.Time), Trigger: e.Metadata.UID,
		Agent: agentOf(e), Task: taskOf(e), Session: sessionOf(e), Tool: toolOf(e), Grant: w.Grant,
		Actions: r.Actions,
	}
}

// key computes the rule's group key for the current event. Single-event
// rules without group-by are keyed by agent and task (for suppression). An
// event lacking one of the group-by values is not counted (ok false).
func (ev *evaluator) key(r *Rule) (string, bool, error) {
	a := &ev.act
	if len(r.groupBy) == 0 {
		if r.Kind == KindSingle {
			return "agent=" + agentOf(a.e) + ",task=" + taskOf(a.e), true, nil
		}
		return "", true, nil
	}
	parts := ev.keyParts[:0]
	for _, k := range r.groupBy {
		s, err := k.str(a)
		if err != nil {
			return "", false, err
		}
		if s == "" {
			return "", false, nil
		}
		parts = append(parts, k.src+"="+s)
	}
	ev.keyParts = parts
	return strings.Join(parts, ","), true, nil
}

// RuleStats is what one rule has done since the engine started.
type RuleStats struct {
	Rule        string `json:"rule"`
	Evaluations uint64 `json:"evaluations"`
	Fired       uint64 `json:"fired"`
	Errors      uint64 `json:"errors"`
	Groups      int    `json:"groups"`
}
