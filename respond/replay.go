package respond

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/warden-run/warden/events"
)

// ReplayStats summarises a replay.
type ReplayStats struct {
	Events     int         `json:"events"`
	Duplicates uint64      `json:"duplicates"`
	Malformed  int         `json:"malformed"`
	Alerts     int         `json:"alerts"`
	Rules      []RuleStats `json:"rules"`
}

// decodeLine reads one event: an event object (an OCSF export, a JSONL
// event log) or an audit-log JSONL export record, whose "event" holds it.
func decodeLine(b []byte) (events.Event, bool) {
	var e events.Event
	if err := json.Unmarshal(b, &e); err != nil {
		return e, false
	}
	if e.ClassUID != 0 {
		return e, true
	}
	var rec struct {
		Event json.RawMessage `json:"event"`
	}
	if json.Unmarshal(b, &rec) != nil || len(rec.Event) == 0 {
		return e, false
	}
	e = events.Event{}
	if json.Unmarshal(rec.Event, &e) != nil || e.ClassUID == 0 {
		return e, false
	}
	return e, true
}

// Replay runs a rule set over events read as JSON lines (`warden audit
// export`, either format, or a JSONL event log), in file order, with the events' own
// times, and reports every alert in the order it fired. It takes no
// action. A line that is not an event is counted and skipped; labels
// gives tools' risk labels (nil: every tool carries all five).
func Replay(rs *RuleSet, r io.Reader, labels func(string) ([]string, bool), onAlert func(Alert, *events.Event)) (ReplayStats, error) {
	ev := newEvaluator(rs, labels, 0, slog.New(slog.DiscardHandler))
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var st ReplayStats
	var alerts []Alert
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		e, ok := decodeLine(b)
		if !ok {
			st.Malformed++
			continue
		}
		st.Events++
		alerts = ev.process(&e, alerts[:0])
		for _, a := range alerts {
			st.Alerts++
			if onAlert != nil {
				onAlert(a, &e)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return st, fmt.Errorf("reading events (line %d): %w", line+1, err)
	}
	st.Duplicates = ev.dupes
	for _, r := range rs.Rules {
		s := ev.states[r.ID]
		st.Rules = append(st.Rules, RuleStats{Rule: r.ID, Evaluations: s.evals, Fired: s.fired, Errors: s.errors, Groups: len(s.groups)})
	}
	return st, nil
}
