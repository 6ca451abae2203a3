package memory

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/store"
)

// Trust of an entry.
const (
	Trusted   = "trusted"   // the writing session had ingested no untrusted content
	Untrusted = "untrusted" // it had: Sources names the calls
)

// Status of an entry.
const (
	Active      = "active"
	Quarantined = "quarantined" // instruction-like content from an untrusted session: never served
)

// Ops an entry records. The first six are the knowledge-graph writes; the
// last two are Warden's own.
const (
	OpCreateEntities     = "create_entities"
	OpCreateRelations    = "create_relations"
	OpAddObservations    = "add_observations"
	OpDeleteEntities     = "delete_entities"
	OpDeleteObservations = "delete_observations"
	OpDeleteRelations    = "delete_relations"
	OpRollback           = "rollback" // payload {"to": seq}: undo the entries after seq
	OpRelease            = "release"  // payload {"seq": n}: serve a quarantined entry after all
)

// Entry is one signed, chained write to a namespace.
type Entry struct {
	NS        string          `json:"ns"`
	Seq       int64           `json:"seq"` // 1, 2, ... within the namespace
	Op        string          `json:"op"`
	Payload   json.RawMessage `json:"payload"`
	Agent     string          `json:"agent"`   // SPIFFE ID of the writer (or warden:operator)
	Task      string          `json:"task"`    // the writer's task
	Session   string          `json:"session"` // the writer's MCP session
	Call      string          `json:"call"`    // the writer's tool call
	Trust     string          `json:"trust"`
	Sources   []string        `json:"sources,omitempty"` // calls whose untrusted content the session had ingested
	Status    string          `json:"status"`
	WrittenAt int64           `json:"written_at"` // Unix nanoseconds
	Prev      string          `json:"prev"`       // hash of the entry before it in the namespace
	Hash      string          `json:"hash"`
	Sig       []byte          `json:"sig"`
}

// ID is the entry's id, ns#seq.
func (e *Entry) ID() string { return fmt.Sprintf("%s#%d", e.NS, e.Seq) }

// digest computes the entry's hash over every field but Hash and Sig, each
// length-prefixed so that no two entries encode alike.
func (e *Entry) digest() string {
	h := sha256.New()
	put := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(e.Seq))
	put([]byte("warden-memory-entry-v1"))
	put([]byte(e.NS))
	put(n[:])
	put([]byte(e.Op))
	put(e.Payload)
	put([]byte(e.Agent))
	put([]byte(e.Task))
	put([]byte(e.Session))
	put([]byte(e.Call))
	put([]byte(e.Trust))
	src, _ := json.Marshal(e.Sources)
	put(src)
	put([]byte(e.Status))
	binary.BigEndian.PutUint64(n[:], uint64(e.WrittenAt))
	put(n[:])
	put([]byte(e.Prev))
	return hex.EncodeToString(h.Sum(nil))
}

var migrations = []string{
	`CREATE TABLE memory_entries (
		ns         TEXT NOT NULL,
		seq        INTEGER NOT NULL,
		op         TEXT NOT NULL,
		payload    TEXT NOT NULL,
		agent      TEXT NOT NULL,
		task       TEXT NOT NULL,
		session    TEXT NOT NULL,
		call       TEXT NOT NULL,
		trust      TEXT NOT NULL,
		sources    TEXT NOT NULL,
		status     TEXT NOT NULL,
		written_at INTEGER NOT NULL,
		prev       TEXT NOT NULL,
		hash       TEXT NOT NULL,
		sig        BLOB NOT NULL,
		PRIMARY KEY (ns, seq)
	);
	CREATE TABLE memory_snapshots (
		name       TEXT PRIMARY KEY,
		created_at INTEGER NOT NULL,
		created_by TEXT NOT NULL,
		heads      TEXT NOT NULL,
		sig        BLOB NOT NULL
	);`,
}

// Store keeps namespaces of entries in the Warden database and verifies
// them as they are read.
type Store struct {
	db     *store.DB
	key    ed25519.PrivateKey
	pub    ed25519.PublicKey
	events events.Sink
	now    func() time.Time

	mu       sync.Mutex
	verified map[string]string // ns#seq -> hash whose signature was checked
	heads    map[string]int64  // highest seq seen per namespace: a shorter chain was truncated
}

// StoreOptions configure a Store.
type StoreOptions struct {
	DB *store.DB
	// Key signs new entries. Without it the store only reads and verifies,
	// with Public.
	Key    ed25519.PrivateKey
	Public ed25519.PublicKey
	// Events receives a memory_write event, with the entry's hash, for
	// every write, in the same transaction: a write that cannot be
	// recorded is not stored. Required to write.
	Events events.Sink
	Now    func() time.Time
}

// maxPayload bounds one entry's payload.
const maxPayload = 256 << 10

// OpenStore migrates the memory tables.
func OpenStore(ctx context.Context, o StoreOptions) (*Store, error) {
	if o.DB == nil {
		return nil, errors.New("memory store needs a database")
	}
	if o.Key != nil {
		o.Public = o.Key.Public().(ed25519.PublicKey)
		if o.Events == nil {
			return nil, errors.New("a memory store that writes needs an event sink to record its writes")
		}
	}
	if len(o.Public) != ed25519.PublicKeySize {
		return nil, errors.New("memory store needs the memory key (or its public half to verify)")
	}
	if err := o.DB.Migrate(ctx, "memory", migrations); err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Store{db: o.DB, key: o.Key, pub: o.Public, events: o.Events, now: o.Now,
		verified: map[string]string{}, heads: map[string]int64{}}, nil
}

// PublicKey is the key entries are verified with.
func (s *Store) PublicKey() ed25519.PublicKey { return s.pub }

// Append signs and chains a new entry at the end of its namespace. The
// caller fills NS, Op, Payload, the provenance, Trust, Sources and Status.
func (s *Store) Append(ctx context.Context, e Entry) (*Entry, error) {
	if s.key == nil {
		return nil, errors.New("this memory store was opened to verify only")
	}
	if len(e.Payload) > maxPayload {
		return nil, fmt.Errorf("memory write is %d bytes; at most %d", len(e.Payload), maxPayload)
	}
	if err := checkNS(e.NS); err != nil {
		return nil, err
	}
	var out Entry
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var seq int64
		var prev string
		err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM memory_entries WHERE ns = ? ORDER BY seq DESC LIMIT 1`, e.NS).Scan(&seq, &prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("reading the namespace's head: %w", err)
		}
		e.Seq, e.Prev, e.WrittenAt = seq+1, prev, s.now().UnixNano()
		e.Hash = e.digest()
		e.Sig = ed25519.Sign(s.key, []byte(e.Hash))
		src, _ := json.Marshal(e.Sources)
		if _, err := tx.ExecContext(ctx, `INSERT INTO memory_entries (ns, seq, op, payload, agent, task, session, call, trust, sources, status, written_at, prev, hash, sig)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, e.NS, e.Seq, e.Op, string(e.Payload), e.Agent, e.Task, e.Session, e.Call, e.Trust, string(src),
			e.Status, e.WrittenAt, e.Prev, e.Hash, e.Sig); err != nil {
			return fmt.Errorf("storing the memory entry: %w", err)
		}
		// The hash of every write goes to the audit log before the write
		// commits, so that truncating or rewriting a namespace is caught
		// against the log (Verify), and a write the log refused is not kept.
		if err := s.events.Emit(ctx, writeEvent(&e)); err != nil {
			return fmt.Errorf("memory write %s not stored: it could not be recorded: %w", e.ID(), err)
		}
		out = e
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.verified[out.ID()] = out.Hash
	if out.Seq > s.heads[out.NS] {
		s.heads[out.NS] = out.Seq
	}
	s.mu.Unlock()
	return &out, nil
}

// Problem is something wrong with a stored entry.
type Problem struct {
	NS     string `json:"ns"`
	Seq    int64  `json:"seq"`
	Reason string `json:"reason"`
}

func (p Problem) String() string { return fmt.Sprintf("%s#%d: %s", p.NS, p.Seq, p.Reason) }

// Load reads a namespace and verifies every entry: its hash, its signature,
// its link to the entry before it, and that no entry is missing from the
// sequence or from the end. It returns the entries that verify (authentic:
// written by Warden, unchanged since) and every problem found; an entry
// whose content changed after it was written is never among the first.
func (s *Store) Load(ctx context.Context, ns string) ([]Entry, []Problem, error) {
	return s.loadAll(ctx, ns, nil)
}

// loadAll is Load, also showing every stored row to each (Verify).
func (s *Store) loadAll(ctx context.Context, ns string, each func(*Entry)) ([]Entry, []Problem, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT ns, seq, op, payload, agent, task, session, call, trust, sources, status, written_at, prev, hash, sig
		FROM memory_entries WHERE ns = ? ORDER BY seq`, ns)
	if err != nil {
		return nil, nil, fmt.Errorf("reading memory namespace %s: %w", ns, err)
	}
	defer rows.Close()
	var good []Entry
	var probs []Problem
	var prevHash string
	var want int64 = 1
	for rows.Next() {
		var e Entry
		var payload, sources string
		if err := rows.Scan(&e.NS, &e.Seq, &e.Op, &payload, &e.Agent, &e.Task, &e.Session, &e.Call, &e.Trust, &sources, &e.Status, &e.WrittenAt, &e.Prev, &e.Hash, &e.Sig); err != nil {
			return nil, nil, fmt.Errorf("reading memory namespace %s: %w", ns, err)
		}
		e.Payload = json.RawMessage(payload)
		if each != nil {
			each(&e)
		}
		if err := json.Unmarshal([]byte(sources), &e.Sources); err != nil {
			probs = append(probs, Problem{ns, e.Seq, "provenance sources are corrupt"})
			prevHash, want = e.Hash, e.Seq+1
			continue
		}
		if e.Seq != want {
			probs = append(probs, Problem{ns, want, fmt.Sprintf("entries %d to %d are missing (deleted outside Warden)", want, e.Seq-1)})
		} else if e.Prev != prevHash {
			probs = append(probs, Problem{ns, e.Seq, "does not follow the entry before it (an entry was inserted, replaced or reordered)"})
		}
		// An entry whose own hash and signature verify is authentic, even
		// when its neighbours were removed: it is served, and the gap is
		// reported.
		if p := s.check(&e); p != "" {
			probs = append(probs, Problem{ns, e.Seq, p})
		} else {
			good = append(good, e)
		}
		prevHash, want = e.Hash, e.Seq+1
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading memory namespace %s: %w", ns, err)
	}
	s.mu.Lock()
	head := s.heads[ns]
	if want-1 > head {
		s.heads[ns] = want - 1
	}
	s.mu.Unlock()
	if want-1 < head {
		probs = append(probs, Problem{ns, want, fmt.Sprintf("entries %d to %d are missing from the end (truncated outside Warden)", want, head)})
	}
	return good, probs, nil
}

// check verifies an entry's hash and signature (the signature once per
// hash: it cannot change without the hash changing).
func (s *Store) check(e *Entry) string {
	if e.digest() != e.Hash {
		return "its content does not match its hash (edited outside Warden)"
	}
	s.mu.Lock()
	ok := s.verified[e.ID()] == e.Hash
	s.mu.Unlock()
	if ok {
		return ""
	}
	if !ed25519.Verify(s.pub, []byte(e.Hash), e.Sig) {
		return "its signature does not verify (written outside Warden)"
	}
	s.mu.Lock()
	s.verified[e.ID()] = e.Hash
	s.mu.Unlock()
	return ""
}

// Namespaces lists the namespaces with entries.
func (s *Store) Namespaces(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT ns FROM memory_entries ORDER BY ns`)
	if err != nil {
		return nil, fmt.Errorf("listing memory namespaces: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var ns string
		if err := rows.Scan(&ns); err != nil {
			return nil, err
		}
		out = append(out, ns)
	}
	return out, rows.Err()
}

// Heads returns the highest seq of every namespace.
func (s *Store) Heads(ctx context.Context) (map[string]int64, error) {
	return headsOf(ctx, s.db)
}

func headsOf(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) (map[string]int64, error) {
	rows, err := q.QueryContext(ctx, `SELECT ns, MAX(seq) FROM memory_entries GROUP BY ns`)
	if err != nil {
		return nil, fmt.Errorf("reading memory heads: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var ns string
		var seq int64
		if err := rows.Scan(&ns, &seq); err != nil {
			return nil, err
		}
		out[ns] = seq
	}
	return out, rows.Err()
}

// Snapshot records every namespace's head under name, signed (so that a
// snapshot edited outside Warden cannot steer a rollback) and recorded in
// the audit log.
func (s *Store) Snapshot(ctx context.Context, name, by string) (map[string]int64, error) {
	if name == "" || len(name) > 128 {
		return nil, errors.New("snapshot name must be 1 to 128 characters")
	}
	if s.key == nil {
		return nil, errors.New("this memory store was opened to verify only")
	}
	var heads map[string]int64
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var taken int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM memory_snapshots WHERE name = ?`, name).Scan(&taken); err != nil {
			return fmt.Errorf("recording snapshot %q: %w", name, err)
		}
		if taken > 0 {
			return refuse(ErrConflict, "a snapshot named %q exists: snapshots are never replaced; choose another name", name)
		}
		var err error
		if heads, err = headsOf(ctx, tx); err != nil {
			return err
		}
		b, _ := json.Marshal(heads)
		at := s.now().UnixNano()
		if _, err := tx.ExecContext(ctx, `INSERT INTO memory_snapshots (name, created_at, created_by, heads, sig) VALUES (?,?,?,?,?)`,
			name, at, by, string(b), ed25519.Sign(s.key, snapshotMessage(name, by, at, string(b)))); err != nil {
			return fmt.Errorf("recording snapshot %q (is the name taken?): %w", name, err)
		}
		ev := events.New(events.ClassAPIActivity, events.ActivityCreate, "memory")
		ev.StatusID = events.StatusSuccess
		ev.Message = fmt.Sprintf("memory snapshot %q of %d namespaces", name, len(heads))
		ev.Actor = &events.Actor{User: &events.User{UID: by}}
		ev.Warden = &events.Warden{Reason: ReasonSnapshot, Attrs: map[string]string{"snapshot": name, "heads": string(b)}}
		return s.events.Emit(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	return heads, nil
}

func snapshotMessage(name, by string, at int64, heads string) []byte {
	return fmt.Appendf(nil, "warden-memory-snapshot-v1\n%s\n%s\n%d\n%s", name, by, at, heads)
}

// SnapshotInfo describes a snapshot.
type SnapshotInfo struct {
	Name      string           `json:"name"`
	CreatedAt time.Time        `json:"created_at"`
	CreatedBy string           `json:"created_by"`
	Heads     map[string]int64 `json:"heads"`
}

// Snapshots lists the snapshots, oldest first.
func (s *Store) Snapshots(ctx context.Context) ([]SnapshotInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, created_at, created_by, heads, sig FROM memory_snapshots ORDER BY created_at`)
	if err != nil {
		return nil, fmt.Errorf("listing snapshots: %w", err)
	}
	defer rows.Close()
	var out []SnapshotInfo
	for rows.Next() {
		var si SnapshotInfo
		var at int64
		var heads string
		var sig []byte
		if err := rows.Scan(&si.Name, &at, &si.CreatedBy, &heads, &sig); err != nil {
			return nil, err
		}
		si.CreatedAt = time.Unix(0, at).UTC()
		if !ed25519.Verify(s.pub, snapshotMessage(si.Name, si.CreatedBy, at, heads), sig) {
			return nil, fmt.Errorf("snapshot %s was changed outside Warden (its signature does not verify)", si.Name)
		}
		if err := json.Unmarshal([]byte(heads), &si.Heads); err != nil {
			return nil, fmt.Errorf("snapshot %s is corrupt: %w", si.Name, err)
		}
		out = append(out, si)
	}
	return out, rows.Err()
}

// Rollback undoes, in every namespace, the entries written after the
// snapshot, by appending a signed rollback entry: the chain itself is never
// rewritten.
func (s *Store) Rollback(ctx context.Context, snapshot, by string) (map[string]int64, error) {
	var heads, by0 string
	var created int64
	var sig []byte
	err := s.db.QueryRowContext(ctx, `SELECT heads, created_by, created_at, sig FROM memory_snapshots WHERE name = ?`, snapshot).Scan(&heads, &by0, &created, &sig)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, refuse(ErrNotFound, "no snapshot %q (list them with `warden memory snapshots`)", snapshot)
	}
	if err != nil {
		return nil, fmt.Errorf("reading snapshot %q: %w", snapshot, err)
	}
	if !ed25519.Verify(s.pub, snapshotMessage(snapshot, by0, created, heads), sig) {
		return nil, refuse(ErrUnverified, "snapshot %q was changed outside Warden (its signature does not verify): not rolling back to it", snapshot)
	}
	var at map[string]int64
	if err := json.Unmarshal([]byte(heads), &at); err != nil {
		return nil, fmt.Errorf("snapshot %q is corrupt: %w", snapshot, err)
	}
	now, err := s.Heads(ctx)
	if err != nil {
		return nil, err
	}
	undone := map[string]int64{}
	for ns, head := range now {
		to := at[ns]
		if head <= to {
			continue
		}
		p, _ := json.Marshal(map[string]int64{"to": to})
		if _, err := s.Append(ctx, Entry{NS: ns, Op: OpRollback, Payload: p, Agent: by, Trust: Trusted, Status: Active}); err != nil {
			return undone, err
		}
		undone[ns] = head - to
	}
	return undone, nil
}

func checkNS(ns string) error {
	if ns == "" || len(ns) > 512 {
		return errors.New("memory namespace must be 1 to 512 characters")
	}
	return nil
}
