package respond

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/warden-run/warden/events"
)

// Bounds on detection state: whatever the event stream does, one rule
// holds at most defaultMaxGroups groups of at most maxEntries entries
// (count and sum windows, 16 bytes each), or at most maxValuesPerRule
// values in all (distinct-value windows: fewer groups when each may hold
// many values), or maxGroups sequences of at most 16 steps.
const (
	defaultMaxGroups = 10_000  // per rule
	maxEntries       = 64      // per group of a count or sum window
	maxDistinct      = 1024    // per group of a value_count or new_value window
	maxValuesPerRule = 100_000 // per value_count or new_value rule, over all its groups
	dedupGeneration  = 32_768  // event ids remembered, per generation (two generations)
)

// valueCapacity is how many values one group of a distinct-value rule
// keeps: the threshold (plus one) for value_count, so that the count is
// exact up to it; maxDistinct for new_value. 0 for other kinds.
func (r *Rule) valueCapacity() int {
	switch r.Kind {
	case KindValueCount:
		return min(maxDistinct, int(r.threshold)+1)
	case KindNewValue:
		return maxDistinct
	}
	return 0
}

// group is one rule's state for one group key.
type group struct {
	key     string
	dirty   bool             // listed in its rule's dirty set
	entries []entry          // event_count, value_sum: (time, amount), oldest first
	values  map[string]int64 // value_count, new_value: value -> last seen (ms)
	starts  []int64          // sequence: per step, the latest start (ms) of a partial sequence that reached it
	quiet   int64            // suppressed until (ms)
	last    int64            // last update (ms)
}

type entry struct {
	T int64   `json:"t"`
	V float64 `json:"v"`
}

// ruleState is one rule's groups.
type ruleState struct {
	rule      *Rule
	maxGroups int
	groups    map[string]*group
	dirty     map[string]bool // changed since the last flush
	errors    uint64
	fired     uint64
	evals     uint64
}

func newRuleState(r *Rule) *ruleState {
	return &ruleState{rule: r, groups: map[string]*group{}, dirty: map[string]bool{}}
}

// get returns the group for key, creating it (and evicting to stay within
// max groups) when absent.
func (s *ruleState) get(kb []byte, now int64, max int) *group {
	if g, ok := s.groups[string(kb)]; ok {
		return g
	}
	if len(s.groups) >= max {
		s.evict(now, max)
	}
	key := string(kb)
	g := &group{key: key}
	if s.rule.Kind == KindSequence {
		g.starts = make([]int64, len(s.rule.steps))
	}
	s.groups[key] = g
	return g
}

// touch marks a group changed since the last flush.
func (s *ruleState) touch(g *group) {
	if !g.dirty {
		g.dirty = true
		s.dirty[g.key] = true
	}
}

// evict drops the groups whose window and suppression have passed, then,
// if still full, the least recently updated eighth.
func (s *ruleState) evict(now int64, limit int) {
	horizon := s.rule.span.Milliseconds()
	for k, g := range s.groups {
		if g.expired(now, horizon) {
			delete(s.groups, k)
			s.dirty[k] = true
		}
	}
	if len(s.groups) < limit {
		return
	}
	type kl struct {
		k string
		l int64
	}
	all := make([]kl, 0, len(s.groups))
	for k, g := range s.groups {
		all = append(all, kl{k, g.last})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].l < all[j].l })
	for _, x := range all[:max(1, len(all)/8)] {
		delete(s.groups, x.k)
		s.dirty[x.k] = true
	}
}

// expired reports whether the group holds nothing that can matter any more.
func (g *group) expired(now, horizon int64) bool {
	return g.last < now-horizon && g.quiet <= now
}

// add records an amount in a count or sum window and returns the window's
// total. Entries older than the span are dropped; past maxEntries the two
// oldest merge, keeping the later time: a merged amount leaves the window
// late, never early (detection errs towards firing).
func (g *group) add(now int64, v float64, span int64) float64 {
	g.prune(now, span)
	g.entries = append(g.entries, entry{T: now, V: v})
	if len(g.entries) > maxEntries {
		g.entries[1].V += g.entries[0].V
		g.entries = g.entries[1:]
	}
	var sum float64
	for _, e := range g.entries {
		sum += e.V
	}
	return sum
}

func (g *group) prune(now, span int64) {
	i := 0
	for i < len(g.entries) && g.entries[i].T < now-span {
		i++
	}
	if i > 0 {
		g.entries = append(g.entries[:0], g.entries[i:]...)
	}
}

// see records a value in a distinct-value window and reports whether it was
// new (not seen within the span) and how many distinct values the window
// holds. At most capacity values are kept: the least recently seen go first
// (for value_count the capacity is the threshold, so the count is exact up
// to it).
func (g *group) see(now int64, v string, span int64, capacity int) (isNew bool, distinct int) {
	if g.values == nil {
		g.values = map[string]int64{}
	}
	for k, t := range g.values {
		if t < now-span {
			delete(g.values, k)
		}
	}
	t, seen := g.values[v]
	isNew = !seen || t < now-span
	g.values[v] = now
	for len(g.values) > capacity {
		oldK, oldT := "", int64(math.MaxInt64)
		for k, t := range g.values {
			if t < oldT && k != v {
				oldK, oldT = k, t
			}
		}
		delete(g.values, oldK)
	}
	return isNew, len(g.values)
}

// step advances a sequence with the steps this event matched and reports
// whether the last step was reached. A partial sequence is remembered by
// the latest start that reached each step (a later start leaves more of
// maxspan); steps are applied last to first so one event advances a
// partial sequence by one step only.
func (g *group) step(now int64, matched []bool, span int64) bool {
	for i := range g.starts {
		if g.starts[i] != 0 && now-g.starts[i] > span {
			g.starts[i] = 0
		}
	}
	n := len(g.starts)
	for i := n - 1; i >= 1; i-- {
		if matched[i] && g.starts[i-1] != 0 && g.starts[i-1] > g.starts[i] {
			g.starts[i] = g.starts[i-1]
		}
	}
	if matched[0] {
		g.starts[0] = now
	}
	return g.starts[n-1] != 0
}

// reset forgets a window after it fired (new_value keeps its values: they
// are the history).
func (g *group) reset(k Kind) {
	g.entries = g.entries[:0]
	if k != KindNewValue {
		g.values = nil
	}
	for i := range g.starts {
		g.starts[i] = 0
	}
}

// persisted is a group as stored.
type persisted struct {
	Entries []entry          `json:"e,omitempty"`
	Values  map[string]int64 `json:"d,omitempty"`
	Starts  []int64          `json:"s,omitempty"`
	Quiet   int64            `json:"q,omitempty"`
	Last    int64            `json:"l"`
}

func (g *group) marshal() ([]byte, error) {
	return json.Marshal(persisted{Entries: g.entries, Values: g.values, Starts: g.starts, Quiet: g.quiet, Last: g.last})
}

// unmarshalGroup restores a stored group, refusing one that does not fit the
// rule's shape or the engine's bounds.
func unmarshalGroup(r *Rule, key string, b []byte) (*group, error) {
	var p persisted
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	if len(p.Entries) > maxEntries || len(p.Values) > maxDistinct {
		return nil, fmt.Errorf("stored window exceeds the engine's bounds")
	}
	g := &group{key: key, entries: p.Entries, values: p.Values, quiet: p.Quiet, last: p.Last}
	if r.Kind == KindSequence {
		if len(p.Starts) != len(r.steps) {
			return nil, fmt.Errorf("stored sequence has %d steps, the rule %d", len(p.Starts), len(r.steps))
		}
		g.starts = p.Starts
	}
	return g, nil
}

// Alert is a rule that fired: what completed its condition and the context
// the response acts on.
type Alert struct {
	ID       string          `json:"id"`
	Rule     string          `json:"rule"`
	Title    string          `json:"title"`
	Level    string          `json:"level"`
	Severity events.Severity `json:"severity_id"`
	Kind     Kind            `json:"kind"`
	// Key is the group the window was kept for ("agent=..., tool=...").
	Key string `json:"key,omitempty"`
	// Value is the window's count, sum or number of distinct values when it
	// fired.
	Value float64   `json:"value,omitempty"`
	Time  time.Time `json:"time"` // the completing event's time
	// Trigger is the id of the event that completed the condition.
	Trigger string   `json:"trigger"`
	Agent   string   `json:"agent,omitempty"`
	Task    string   `json:"task,omitempty"`
	Session string   `json:"session,omitempty"`
	Tool    string   `json:"tool,omitempty"`
	Grant   string   `json:"grant,omitempty"`
	Actions []Action `json:"actions,omitempty"`

	// received is when the engine took the completing event (monotonic):
	// time to contain is measured from it.
	received time.Time
	// barrier, on a pseudo-alert, is closed when the action runner reaches
	// it (Sync).
	barrier chan struct{}
}
