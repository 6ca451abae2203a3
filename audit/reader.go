package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Reader reads a log without writing to it: the CLI uses one while a server
// holds the log open. It sees the records stored when it was opened; a torn
// tail is ignored (the writer truncates it on its next Open).
type Reader struct {
	dir      string
	st       *logState
	verifier note.Verifier
	cp       *Checkpoint
	hashes   *os.File
	store    hashStore
}

// OpenReader opens the log in dir for reading. The newest checkpoint must be
// signed by v's key.
func OpenReader(dir string, v note.Verifier) (*Reader, error) {
	if v == nil {
		return nil, errors.New("opening audit log: a checkpoint verifier is required (see LocalVerifier)")
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	cp, err := readCheckpointFile(dir, v)
	if err != nil {
		return nil, err
	}
	var covered uint64
	if cp != nil {
		covered = cp.Size
	}
	st, err := loadState(dir, covered)
	if err != nil {
		return nil, err
	}
	r := &Reader{dir: dir, st: st, verifier: v, cp: cp}
	f, err := os.Open(filepath.Join(dir, hashesFile))
	if err == nil {
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("opening tree nodes: %w", err)
		}
		r.hashes = f
		r.store = hashStore{r: f, n: min(leavesCovered(uint64(fi.Size())/hashSize), st.size)}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("opening tree nodes: %w", err)
	}
	return r, nil
}

// Close releases the reader's files.
func (r *Reader) Close() error {
	if r.hashes != nil {
		return r.hashes.Close()
	}
	return nil
}

// Size is the number of whole records stored.
func (r *Reader) Size() uint64 { return r.st.size }

// Checkpoint is the newest signed checkpoint, or nil.
func (r *Reader) Checkpoint() *Checkpoint { return r.cp }

// Record reads one record.
func (r *Reader) Record(index uint64) (Record, error) {
	for _, s := range r.st.segs {
		if index >= s.first && index < s.first+s.count {
			return recordAt(s, index)
		}
	}
	return Record{}, fmt.Errorf("no record %d: the log has %d", index, r.st.size)
}

// Scan calls fn for every record from index from on.
func (r *Reader) Scan(ctx context.Context, from uint64, fn func(Record) error) error {
	return scanRecords(r.st.segs, from, func(rec Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(rec)
	})
}

// Query selects records. Zero fields match everything.
type Query struct {
	Agent   string    // Event.Warden.Agent
	Task    string    // Event.Warden.Task or Metadata.CorrelationUID
	EventID string    // Metadata.UID
	Since   time.Time // event time at or after
	Until   time.Time // event time before
	From    uint64    // log index at or after
}

// Query calls fn for every record matching q, in log order, using the index
// files to find candidates and the records to confirm them.
func (r *Reader) Query(ctx context.Context, q Query, fn func(Record) error) error {
	agent, task := keyOf(q.Agent), keyOf(q.Task)
	var id [16]byte
	if q.EventID != "" {
		id = idOf(q.EventID)
	}
	for _, s := range r.st.segs {
		if s.first+s.count <= q.From {
			continue
		}
		entries, err := indexEntries(s)
		if err != nil {
			return err
		}
		f, err := os.Open(s.path)
		if err != nil {
			return fmt.Errorf("reading audit segment: %w", err)
		}
		for k := 0; k*idxEntrySize < len(entries); k++ {
			if err := ctx.Err(); err != nil {
				f.Close()
				return err
			}
			if s.first+uint64(k) < q.From {
				continue
			}
			e := decodeIdx(entries[k*idxEntrySize:])
			if (agent != 0 && e.agent != agent) || (task != 0 && e.task != task) ||
				(q.EventID != "" && e.id != id) ||
				(!q.Since.IsZero() && e.eventTime < q.Since.UnixMilli()) ||
				(!q.Until.IsZero() && e.eventTime >= q.Until.UnixMilli()) {
				continue
			}
			rec, _, err := readRecordAt(f, e.off)
			if err != nil || rec.Index != s.first+uint64(k) {
				f.Close()
				return &CorruptError{Index: s.first + uint64(k), Reason: "index entry does not point at its record"}
			}
			keys := keysFromJSON(rec.Event)
			if (q.Agent != "" && keys.agent != q.Agent) || (q.Task != "" && keys.task != q.Task) ||
				(q.EventID != "" && keys.id != q.EventID) {
				continue // key collision
			}
			if err := fn(rec); err != nil {
				f.Close()
				return err
			}
		}
		f.Close()
	}
	return nil
}

// indexEntries returns the encoded index entries of a segment's records.
func indexEntries(s segInfo) ([]byte, error) {
	var b []byte
	if !s.rebuilt && s.idxKeep > 0 {
		f, err := os.Open(idxPathOf(s.path))
		if err != nil {
			return nil, fmt.Errorf("reading audit index: %w", err)
		}
		b = make([]byte, s.idxKeep*idxEntrySize)
		_, err = f.ReadAt(b, 0)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading audit index: %w", err)
		}
	}
	return append(b, s.idxAdd...), nil
}

// Checkpoints returns every checkpoint the log signed that still verifies,
// oldest first, and the problems met reading them.
func (r *Reader) Checkpoints() ([]*Checkpoint, []error) {
	return readHistory(r.dir, r.verifier)
}

// CheckpointAt returns the signed checkpoint of exactly size n, if the log
// kept one.
func (r *Reader) CheckpointAt(n uint64) *Checkpoint {
	if r.cp != nil && r.cp.Size == n {
		return r.cp
	}
	cps, _ := readHistory(r.dir, nil)
	for i := len(cps) - 1; i >= 0; i-- {
		if cps[i].Size == n {
			if cp, err := ParseCheckpoint(cps[i].Note, r.verifier); err == nil {
				return cp
			}
		}
	}
	return nil
}

// InclusionProof proves record index is in the tree of the newest checkpoint.
func (r *Reader) InclusionProof(index uint64) (*InclusionBundle, error) {
	if r.cp == nil {
		return nil, errors.New("the log has no signed checkpoint yet")
	}
	if index >= r.cp.Size {
		return nil, fmt.Errorf("index %d is not covered by the newest checkpoint (size %d)", index, r.cp.Size)
	}
	rec, err := r.Record(index)
	if err != nil {
		return nil, err
	}
	p, err := r.store.inclusion(index, r.cp.Size)
	if err != nil {
		return nil, fmt.Errorf("building inclusion proof: %w", err)
	}
	return &InclusionBundle{Kind: "inclusion", Index: index, TreeSize: r.cp.Size, Leaf: rec.body,
		Proof: p, Checkpoint: string(r.cp.Note)}, nil
}

// ConsistencyProof proves that the tree of size old is a prefix of the tree
// of the newest checkpoint.
func (r *Reader) ConsistencyProof(old uint64) (*ConsistencyBundle, error) {
	if r.cp == nil {
		return nil, errors.New("the log has no signed checkpoint yet")
	}
	if old == 0 || old > r.cp.Size {
		return nil, fmt.Errorf("old size %d: want between 1 and the newest checkpoint's %d", old, r.cp.Size)
	}
	p, err := r.store.consistency(old, r.cp.Size)
	if err != nil {
		return nil, fmt.Errorf("building consistency proof: %w", err)
	}
	b := &ConsistencyBundle{Kind: "consistency", OldSize: old, TreeSize: r.cp.Size, Proof: p, Checkpoint: string(r.cp.Note)}
	if oc := r.CheckpointAt(old); oc != nil {
		b.OldCheckpoint = string(oc.Note)
	}
	return b, nil
}

// readHistory reads the local checkpoint history. A torn last note (a crash
// while appending) is skipped; any other bad note is reported. With v nil the
// signatures are not checked (Verify checks them only where it matters: a
// year of 10-second checkpoints is three million signatures).
func readHistory(dir string, v note.Verifier) ([]*Checkpoint, []error) {
	b, err := os.ReadFile(filepath.Join(dir, historyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{fmt.Errorf("reading checkpoint history: %w", err)}
	}
	var cps []*Checkpoint
	var errs []error
	notes := SplitNotes(b)
	for i, n := range notes {
		var cp *Checkpoint
		if v != nil {
			cp, err = ParseCheckpoint(n, v)
		} else {
			cp, err = parseUnverified(n)
		}
		if err != nil {
			if i == len(notes)-1 && !bytes.Contains(n, []byte("\n\n— ")) {
				continue // torn append
			}
			errs = append(errs, fmt.Errorf("checkpoint history entry %d: %w", i+1, err))
			continue
		}
		cps = append(cps, cp)
	}
	return cps, errs
}

// LoadVerifier reads the verifier key from a file (as `warden audit key`
// writes it), or parses it when the argument is the key itself.
func LoadVerifier(keyOrPath string) (note.Verifier, error) {
	s := keyOrPath
	if !strings.Contains(s, "+") || fileExists(s) {
		b, err := os.ReadFile(s)
		if err != nil {
			return nil, fmt.Errorf("reading verifier key: %w", err)
		}
		s = string(b)
	}
	return NewVerifier(s)
}

// PublicKeyPath is where Open stores the verifier key beside the log.
func PublicKeyPath(dir string) string { return filepath.Join(dir, pubKeyFile) }

// LocalVerifier is the verifier key stored beside the log. An attacker with
// root can replace it along with everything else: check against a key held
// elsewhere when it matters.
func LocalVerifier(dir string) (note.Verifier, error) {
	return LoadVerifier(filepath.Join(dir, pubKeyFile))
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
