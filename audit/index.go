package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash/fnv"

	"github.com/warden-run/warden/events"
)

// Each segment has an index file beside it (<first>.idx) with one fixed-size
// entry per record, so that lookups by time, agent, task and event id read
// 56 bytes per event instead of parsing JSON:
//
//	int64  offset of the record in the segment
//	int64  logged time (Unix ns)
//	int64  event time (Unix ms, as the emitter set it)
//	uint64 agent key (FNV-1a of Event.Warden.Agent; 0 when none)
//	uint64 task key  (FNV-1a of the task id; 0 when none)
//	[16]   event id  (Metadata.UID as 16 bytes)
//
// Keys may collide; a lookup confirms every candidate against the record.
// The index is derived: it is rebuilt from the segment when missing or short.
const idxEntrySize = 56

type idxEntry struct {
	off       int64
	logged    int64
	eventTime int64
	agent     uint64
	task      uint64
	id        [16]byte
}

func (e *idxEntry) append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.off))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.logged))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.eventTime))
	dst = binary.BigEndian.AppendUint64(dst, e.agent)
	dst = binary.BigEndian.AppendUint64(dst, e.task)
	return append(dst, e.id[:]...)
}

func decodeIdx(b []byte) idxEntry {
	var e idxEntry
	e.off = int64(binary.BigEndian.Uint64(b))
	e.logged = int64(binary.BigEndian.Uint64(b[8:]))
	e.eventTime = int64(binary.BigEndian.Uint64(b[16:]))
	e.agent = binary.BigEndian.Uint64(b[24:])
	e.task = binary.BigEndian.Uint64(b[32:])
	copy(e.id[:], b[40:56])
	return e
}

// keyOf maps an agent or task id to its index key; 0 means none.
func keyOf(s string) uint64 {
	if s == "" {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(s))
	if k := h.Sum64(); k != 0 {
		return k
	}
	return 1
}

// idOf maps an event id to 16 bytes: the id itself when it is 32 hex digits
// (as events.NewID makes them), otherwise a hash of it.
func idOf(s string) [16]byte {
	var out [16]byte
	if len(s) == 32 {
		if _, err := hex.Decode(out[:], []byte(s)); err == nil {
			return out
		}
	}
	sum := sha256.Sum256([]byte(s))
	copy(out[:], sum[:16])
	return out
}

// eventKeys are the fields of an event the index and queries use.
type eventKeys struct {
	time  int64
	agent string
	task  string
	id    string
}

func keysOf(e *events.Event) eventKeys {
	k := eventKeys{time: e.Time, id: e.Metadata.UID, task: e.Metadata.CorrelationUID}
	if e.Warden != nil {
		k.agent = e.Warden.Agent
		if e.Warden.Task != "" {
			k.task = e.Warden.Task
		}
	}
	return k
}

// keysFromJSON extracts the index fields from a stored event. Damaged or
// foreign JSON yields empty keys, never an error: the index is a lookup aid,
// and verification covers the bytes.
func keysFromJSON(b []byte) eventKeys {
	var e struct {
		Time     int64 `json:"time"`
		Metadata struct {
			UID            string `json:"uid"`
			CorrelationUID string `json:"correlation_uid"`
		} `json:"metadata"`
		Warden *struct {
			Agent string `json:"agent"`
			Task  string `json:"task"`
		} `json:"unmapped"`
	}
	if json.Unmarshal(b, &e) != nil {
		return eventKeys{}
	}
	k := eventKeys{time: e.Time, id: e.Metadata.UID, task: e.Metadata.CorrelationUID}
	if e.Warden != nil {
		k.agent = e.Warden.Agent
		if e.Warden.Task != "" {
			k.task = e.Warden.Task
		}
	}
	return k
}

func (k eventKeys) entry(off, logged int64) idxEntry {
	return idxEntry{off: off, logged: logged, eventTime: k.time, agent: keyOf(k.agent), task: keyOf(k.task), id: idOf(k.id)}
}
