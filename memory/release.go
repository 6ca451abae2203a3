package memory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kinds of refusal of an operator's request to the store (Snapshot,
// Rollback, Release), for errors.Is: a caller maps them to its own codes.
var (
	ErrNotFound   = errors.New("memory: not found")
	ErrConflict   = errors.New("memory: conflicts with the state of the store")
	ErrUnverified = errors.New("memory: does not verify")
)

// refusal is an error of one of the kinds above, with its own message.
type refusal struct {
	kind error
	msg  string
}

func (r *refusal) Error() string        { return r.msg }
func (r *refusal) Is(target error) bool { return target == r.kind }

func refuse(kind error, format string, a ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, a...)}
}

// ParseID parses an entry id, ns#seq.
func ParseID(id string) (string, int64, error) {
	i := strings.LastIndexByte(id, '#')
	if i < 0 {
		return "", 0, fmt.Errorf("entry %q: want namespace#seq, e.g. agent/billing-bot#7", id)
	}
	seq, err := strconv.ParseInt(id[i+1:], 10, 64)
	if err != nil || seq < 1 {
		return "", 0, fmt.Errorf("entry %q: the sequence number after # must be 1 or more", id)
	}
	if err := checkNS(id[:i]); err != nil {
		return "", 0, fmt.Errorf("entry %q: %w", id, err)
	}
	return id[:i], seq, nil
}

// Fate is what later entries of its namespace did to an entry, as Build
// replays them: the rollback entry that undid it, the release entry that
// serves it although it was quarantined (0: none).
type Fate struct {
	UndoneBy   int64 `json:"undone_by,omitempty"`
	ReleasedBy int64 `json:"released_by,omitempty"`
}

// Fates computes the fate of every entry of one namespace (entries in
// order) that a rollback or release entry touched, exactly as Build does.
// It walks back from the newest entry: a rollback in effect undoes every
// entry between its target and itself, rollbacks and releases among them
// included, so an undone rollback undoes nothing and an undone release
// releases nothing; a release in effect serves its quarantined entry.
func Fates(entries []Entry) map[int64]Fate {
	out := map[int64]Fate{}
	for i := len(entries) - 1; i >= 0; i-- {
		e := &entries[i]
		switch e.Op {
		case OpRollback:
			var r rollbackTo
			if json.Unmarshal(e.Payload, &r) != nil {
				continue
			}
			j := i - 1
			for ; j >= 0 && entries[j].Seq > r.To; j-- {
				f := out[entries[j].Seq]
				f.UndoneBy = e.Seq
				out[entries[j].Seq] = f
			}
			i = j + 1 // resume at the rollback's target
		case OpRelease:
			var r releaseSeq
			if json.Unmarshal(e.Payload, &r) == nil {
				f := out[r.Seq]
				if f.ReleasedBy == 0 {
					f.ReleasedBy = e.Seq
				}
				out[r.Seq] = f
			}
		}
	}
	return out
}

// Release serves a quarantined entry after all (an operator judged it
// harmless), by appending a signed release entry: the quarantined entry
// itself is never changed. The entry keeps its provenance: it is still
// untrusted, so a read withholds or marks it as it does any untrusted
// entry. Refused when the entry does not verify (its own hash, signature
// or link), is not quarantined, was already released, or was undone by a
// rollback (releasing it would serve nothing).
func (s *Store) Release(ctx context.Context, id, by string) (*Entry, error) {
	if s.key == nil {
		return nil, errors.New("this memory store was opened to verify only")
	}
	ns, seq, err := ParseID(id)
	if err != nil {
		return nil, err
	}
	good, probs, err := s.Load(ctx, ns)
	if err != nil {
		return nil, err
	}
	for _, p := range probs {
		if p.Seq == seq {
			return nil, refuse(ErrUnverified, "entry %s does not verify (%s): not releasing it", id, p.Reason)
		}
	}
	var target *Entry
	for i := range good {
		if good[i].Seq == seq {
			target = &good[i]
		}
	}
	if target == nil {
		return nil, refuse(ErrNotFound, "no entry %s", id)
	}
	if target.Status != Quarantined {
		return nil, refuse(ErrConflict, "entry %s is %s, not quarantined: there is nothing to release", id, target.Status)
	}
	fate := Fates(good)[seq]
	if fate.ReleasedBy != 0 {
		return nil, refuse(ErrConflict, "entry %s was already released by %s#%d", id, ns, fate.ReleasedBy)
	}
	if fate.UndoneBy != 0 {
		return nil, refuse(ErrConflict, "entry %s was undone by the rollback %s#%d: releasing it would serve nothing", id, ns, fate.UndoneBy)
	}
	p, _ := json.Marshal(releaseSeq{Seq: seq})
	return s.Append(ctx, Entry{NS: ns, Op: OpRelease, Payload: p, Agent: by, Trust: Trusted, Status: Active})
}
