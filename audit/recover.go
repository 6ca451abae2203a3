package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

type ed25519PublicKey = ed25519.PublicKey

// recover brings the files to a consistent state before writing: it checks
// the newest checkpoint's signature, loads the segments (cutting a torn tail),
// rebuilds the derived index and tree files where they are behind, and checks
// the stored records against the newest checkpoint.
func (l *Log) recover(ctx context.Context) (*torn, error) {
	cp, err := readCheckpointFile(l.dir, l.verifier)
	if err != nil {
		return nil, fmt.Errorf("refusing to open the audit log: %w", err)
	}
	var covered uint64
	if cp != nil {
		covered = cp.Size
	}
	st, err := loadState(l.dir, covered)
	if err != nil {
		return nil, fmt.Errorf("refusing to open the audit log: %w", err)
	}
	if st.size < covered {
		return nil, fmt.Errorf("refusing to open the audit log: %w", &CorruptError{Index: st.size, End: covered,
			Reason: fmt.Sprintf("the signed checkpoint covers %d records but only %d are stored: records were removed", covered, st.size)})
	}
	t := st.torn()

	if len(st.segs) == 0 {
		seg, idx, err := createSegment(l.dir, 0)
		if err != nil {
			return nil, err
		}
		l.seg, l.idx, l.segFirst, l.segSize, l.segAlloc = seg, idx, 0, int64(len(segMagic)), int64(len(segMagic))
	} else {
		for i := range st.segs {
			if err := fixIndex(&st.segs[i]); err != nil {
				return nil, err
			}
		}
		last := st.segs[len(st.segs)-1]
		seg, err := os.OpenFile(last.path, os.O_RDWR, 0o600)
		if err != nil {
			return nil, fmt.Errorf("opening audit segment: %w", err)
		}
		l.seg, l.segFirst, l.segSize = seg, last.first, last.end
		if last.header {
			l.segSize = int64(len(segMagic))
			if err := seg.Truncate(0); err == nil {
				_, err = seg.WriteAt([]byte(segMagic), 0)
			}
			if err != nil {
				seg.Close()
				return nil, fmt.Errorf("rewriting a torn segment header: %w", err)
			}
		} else if t != nil {
			if err := seg.Truncate(t.off); err != nil {
				seg.Close()
				return nil, fmt.Errorf("truncating a torn write: %w", err)
			}
		}
		if t != nil {
			if err := seg.Sync(); err != nil {
				seg.Close()
				return nil, fmt.Errorf("truncating a torn write: %w", err)
			}
		}
		// Space allocated ahead (zeros after the last record) is kept.
		segStat, err := seg.Stat()
		if err != nil {
			seg.Close()
			return nil, fmt.Errorf("opening audit segment: %w", err)
		}
		l.segAlloc = max(segStat.Size(), l.segSize)
		l.idx, err = os.OpenFile(idxPathOf(last.path), os.O_RDWR, 0o600)
		if err != nil {
			seg.Close()
			return nil, fmt.Errorf("opening audit index: %w", err)
		}
		fi, err := l.idx.Stat()
		if err != nil {
			l.closeFiles()
			return nil, fmt.Errorf("opening audit index: %w", err)
		}
		l.idxWrote = fi.Size()
		if last.count > 0 {
			rec, err := recordAt(last, last.first+last.count-1)
			if err != nil {
				l.closeFiles()
				return nil, err
			}
			l.lastLogged = rec.Logged
		}
	}

	if err := l.loadTree(st, false); err != nil {
		l.closeFiles()
		return nil, err
	}
	if cp != nil {
		root, err := l.tree.store().root(cp.Size)
		if err != nil || !rootsEqual(root, cp.Root) {
			l.log.Warn("audit: stored tree does not match the newest checkpoint; rebuilding it from the segments", "size", cp.Size)
			if err := l.loadTree(st, true); err != nil {
				l.closeFiles()
				return nil, err
			}
			root, err = l.tree.store().root(cp.Size)
			if err != nil || !rootsEqual(root, cp.Root) {
				l.closeFiles()
				return nil, fmt.Errorf("refusing to open the audit log: %w", &CorruptError{Index: 0, End: cp.Size,
					Reason: fmt.Sprintf("the stored records do not match the checkpoint signed at size %d (run `warden audit verify`)", cp.Size)})
			}
		}
		l.latest.Store(cp)
	}
	l.size.Store(st.size)
	_ = ctx
	return t, nil
}

// fixIndex makes a segment's index file hold exactly its records' entries.
func fixIndex(s *segInfo) error {
	if !s.rebuilt && len(s.idxAdd) == 0 {
		if fi, err := os.Stat(idxPathOf(s.path)); err == nil && uint64(fi.Size()) == s.idxKeep*idxEntrySize {
			return nil
		}
	}
	f, err := os.OpenFile(idxPathOf(s.path), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("repairing audit index: %w", err)
	}
	defer f.Close()
	keep := int64(s.idxKeep * idxEntrySize)
	if s.rebuilt {
		keep = 0
	}
	if err := f.Truncate(keep); err != nil {
		return fmt.Errorf("repairing audit index: %w", err)
	}
	if _, err := f.WriteAt(s.idxAdd, keep); err != nil {
		return fmt.Errorf("repairing audit index: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("repairing audit index: %w", err)
	}
	s.idxKeep += uint64(len(s.idxAdd) / idxEntrySize)
	if s.rebuilt {
		s.idxKeep = uint64(len(s.idxAdd) / idxEntrySize)
	}
	s.idxAdd, s.rebuilt = nil, false
	return nil
}

// loadTree opens the hashes file and appends the leaves it lacks; with
// rebuild it starts over from the first leaf.
func (l *Log) loadTree(st *logState, rebuild bool) error {
	if l.tree != nil && l.tree.f != nil {
		l.tree.f.Close()
	}
	f, err := os.OpenFile(filepath.Join(l.dir, hashesFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening tree nodes: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("opening tree nodes: %w", err)
	}
	n := min(leavesCovered(uint64(fi.Size())/hashSize), st.size)
	if rebuild {
		n = 0
	}
	keep := storedCount(n) * hashSize
	if err := f.Truncate(int64(keep)); err != nil {
		f.Close()
		return fmt.Errorf("repairing tree nodes: %w", err)
	}
	rng := rangeFactory().NewEmptyRange(0)
	if n > 0 {
		if rng, err = (hashStore{r: f, n: n}).rangeAt(n); err != nil {
			f.Close()
			return fmt.Errorf("loading tree nodes: %w", err)
		}
	}
	l.tree = &treeWriter{f: f, rng: rng, wrote: keep}
	err = scanRecords(st.segs, n, func(rec Record) error {
		h := leafHash(rec.body)
		if err := l.tree.append(h[:]); err != nil {
			return err
		}
		if len(l.tree.buf) >= 1<<20 {
			return l.tree.flush()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rebuilding tree nodes: %w", err)
	}
	if err := l.tree.flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing tree nodes: %w", err)
	}
	return nil
}

// recordAt reads record index from a segment, through its index file.
func recordAt(s segInfo, index uint64) (Record, error) {
	off, err := offsetOf(s, index)
	if err != nil {
		return Record{}, err
	}
	f, err := os.Open(s.path)
	if err != nil {
		return Record{}, fmt.Errorf("reading audit record %d: %w", index, err)
	}
	defer f.Close()
	rec, _, err := readRecordAt(f, off)
	if err != nil {
		return Record{}, fmt.Errorf("reading audit record %d: %w", index, err)
	}
	if rec.Index != index {
		return Record{}, &CorruptError{Index: index, Reason: fmt.Sprintf("index points at record %d", rec.Index)}
	}
	return rec, nil
}

// offsetOf finds where record index starts in its segment: from the index
// file when it covers it, otherwise by scanning the segment.
func offsetOf(s segInfo, index uint64) (int64, error) {
	k := index - s.first
	if !s.rebuilt && k < s.idxKeep {
		b := make([]byte, idxEntrySize)
		f, err := os.Open(idxPathOf(s.path))
		if err == nil {
			_, err = f.ReadAt(b, int64(k*idxEntrySize))
			f.Close()
		}
		if err == nil {
			return decodeIdx(b).off, nil
		}
	}
	base := uint64(0)
	if !s.rebuilt {
		base = s.idxKeep
	}
	if j := k - base; k >= base && j < uint64(len(s.idxAdd)/idxEntrySize) {
		return decodeIdx(s.idxAdd[j*idxEntrySize:]).off, nil
	}
	return 0, fmt.Errorf("audit record %d is not in segment %s", index, filepath.Base(s.path))
}

// scanRecords calls fn for every record from index from to the end of the
// loaded state. Records are checked as they are read.
func scanRecords(segs []segInfo, from uint64, fn func(Record) error) error {
	for _, s := range segs {
		if from >= s.first+s.count {
			continue
		}
		start := int64(len(segMagic))
		next := s.first
		if from > s.first {
			off, err := offsetOf(s, from)
			if err != nil {
				return err
			}
			start, next = off, from
		}
		if err := scanSegment(s, start, next, fn); err != nil {
			return err
		}
	}
	return nil
}

func scanSegment(s segInfo, start int64, next uint64, fn func(Record) error) error {
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("reading audit segment: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return fmt.Errorf("reading audit segment: %w", err)
	}
	r := newSegReader(f, start)
	end := s.first + s.count
	for next < end {
		rec, err := r.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errTruncated
			}
			return &CorruptError{Index: next, Reason: fmt.Sprintf("record unreadable: %v", err)}
		}
		if rec.Index != next {
			return &CorruptError{Index: next, Reason: fmt.Sprintf("the record stored at position %d says it is index %d", next, rec.Index)}
		}
		if err := fn(rec); err != nil {
			return err
		}
		next++
	}
	return nil
}
