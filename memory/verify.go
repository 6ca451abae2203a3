package memory

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/warden-run/warden/events"
)

// Reason codes of the events the memory package raises.
const (
	ReasonWrite       = "memory_write"       // an entry was stored; attrs carry its hash
	ReasonRead        = "memory_read"        // a read was served; attrs carry a digest of what
	ReasonQuarantined = "memory_quarantined" // instruction-like write from an untrusted session
	ReasonTampered    = "memory_tampered"    // an entry failed verification and was withheld
	ReasonSnapshot    = "memory_snapshot"
)

// writeEvent records one stored entry: its id and hash, so that the audit
// log can later prove the chain was neither truncated nor rewritten.
func writeEvent(e *Entry) events.Event {
	ev := events.New(events.ClassAPIActivity, events.ActivityCreate, "memory")
	ev.StatusID = events.StatusSuccess
	ev.Message = fmt.Sprintf("memory write %s (%s, %s)", e.ID(), e.Trust, e.Status)
	ev.Actor = &events.Actor{User: &events.User{UID: e.Agent, Type: "agent"}}
	if e.Session != "" {
		ev.Actor.Session = &events.Session{UID: e.Session}
	}
	ev.Resources = []events.Resource{{UID: e.NS, Type: "memory_namespace"}}
	ev.Warden = &events.Warden{Agent: e.Agent, Task: e.Task, Reason: ReasonWrite, Attrs: map[string]string{
		"ns": e.NS, "seq": strconv.FormatInt(e.Seq, 10), "entry": e.ID(), "hash": e.Hash,
		"op": e.Op, "trust": e.Trust, "status": e.Status, "call": e.Call}}
	return ev
}

// RecordedWrite reads a memory_write event (as the audit log stores it):
// the entry id and hash it recorded.
func RecordedWrite(event []byte) (id, hash string, ok bool) {
	var ev struct {
		Warden *events.Warden `json:"unmapped"`
	}
	if json.Unmarshal(event, &ev) != nil || ev.Warden == nil || ev.Warden.Reason != ReasonWrite {
		return "", "", false
	}
	id, hash = ev.Warden.Attrs["entry"], ev.Warden.Attrs["hash"]
	return id, hash, id != "" && hash != ""
}

// Report is what Verify found.
type Report struct {
	Namespaces int       `json:"namespaces"`
	Entries    int       `json:"entries"`  // stored
	Verified   int       `json:"verified"` // hash and signature good
	Checked    int       `json:"checked_against_log"`
	Problems   []Problem `json:"problems,omitempty"`
}

// Verify checks every namespace: each entry's hash, signature and link, and
// that none is missing. Given recorded, the entry hashes the audit log holds
// (id -> hash, from RecordedWrite), it also proves the store against the
// log: an entry the log recorded but the store lacks or holds with another
// hash was deleted or rewritten, and an entry the log never recorded was
// inserted outside Warden (by someone holding the memory key).
func (s *Store) Verify(ctx context.Context, recorded map[string]string) (*Report, error) {
	nss, err := s.Namespaces(ctx)
	if err != nil {
		return nil, err
	}
	rep := &Report{Namespaces: len(nss)}
	stored := map[string]string{}
	for _, ns := range nss {
		good, probs, err := s.loadAll(ctx, ns, func(e *Entry) { stored[e.ID()] = e.Hash })
		if err != nil {
			return nil, err
		}
		rep.Verified += len(good)
		rep.Problems = append(rep.Problems, probs...)
	}
	rep.Entries = len(stored)
	if recorded == nil {
		return rep, nil
	}
	for id, h := range stored {
		ns, seq := splitID(id)
		switch want, ok := recorded[id]; {
		case !ok:
			rep.Problems = append(rep.Problems, Problem{ns, seq, "the audit log never recorded this entry (inserted outside Warden)"})
		case want != h:
			rep.Problems = append(rep.Problems, Problem{ns, seq, "its hash differs from the one the audit log recorded (rewritten)"})
		default:
			rep.Checked++
		}
	}
	for id := range recorded {
		if _, ok := stored[id]; !ok {
			ns, seq := splitID(id)
			rep.Problems = append(rep.Problems, Problem{ns, seq, "recorded in the audit log but missing from the store (deleted or truncated outside Warden)"})
		}
	}
	sort.Slice(rep.Problems, func(i, j int) bool {
		a, b := rep.Problems[i], rep.Problems[j]
		if a.NS != b.NS {
			return a.NS < b.NS
		}
		return a.Seq < b.Seq
	})
	return rep, nil
}

// splitID parses ns#seq.
func splitID(id string) (string, int64) {
	for i := len(id) - 1; i >= 0; i-- {
		if id[i] == '#' {
			n, _ := strconv.ParseInt(id[i+1:], 10, 64)
			return id[:i], n
		}
	}
	return id, 0
}
