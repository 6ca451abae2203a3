package audit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// CorruptError reports stored bytes that are not what the log wrote: damage
// or tampering. Index is the first leaf that cannot be vouched for. When only
// a root mismatch betrays the change, the damage lies somewhere in
// [Index, End) and End is set.
type CorruptError struct {
	Index  uint64
	End    uint64
	Reason string
}

func (e *CorruptError) Error() string {
	if e.End > e.Index {
		return fmt.Sprintf("audit log is not intact between index %d and %d: %s", e.Index, e.End, e.Reason)
	}
	return fmt.Sprintf("audit log is not intact at index %d: %s", e.Index, e.Reason)
}

// maxTornBytes bounds what may be discarded as a torn write: more than one
// group commit can ever write is damage, not a torn write.
const maxTornBytes = 64 << 20

// segInfo is what loading learned about one segment.
type segInfo struct {
	first   uint64
	path    string
	count   uint64
	end     int64  // offset just past the last whole record
	idxKeep uint64 // leading entries of the idx file that are right
	idxAdd  []byte // entries to write after them
	rebuilt bool   // the idx file must be rewritten from idxAdd alone
	torn    *torn  // a torn tail (last segment only)
	header  bool   // the segment lacks its magic (torn at creation)
}

type torn struct {
	off    int64
	index  uint64
	bytes  int64
	reason error
}

// logState is the stored log as loading found it.
type logState struct {
	segs []segInfo
	size uint64
}

func (st *logState) torn() *torn {
	if len(st.segs) == 0 {
		return nil
	}
	return st.segs[len(st.segs)-1].torn
}

// loadState scans the segments in dir. covered is the size of the newest
// signed checkpoint: a damaged record below it is never a torn write.
func loadState(dir string, covered uint64) (*logState, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	st := &logState{}
	for i, s := range segs {
		if s.first != st.size {
			return nil, &CorruptError{Index: st.size, Reason: fmt.Sprintf("segment %s starts at index %d, want %d: records are missing or duplicated", filepath.Base(s.path), s.first, st.size)}
		}
		want := int64(-1)
		if i+1 < len(segs) {
			want = int64(segs[i+1].first - s.first)
		}
		info, err := loadSegment(s, want, covered)
		if err != nil {
			return nil, err
		}
		st.segs = append(st.segs, info)
		st.size += info.count
	}
	return st, nil
}

// loadSegment learns a segment's records, trusting its index file only as far
// as a spot check of its last entry confirms it.
func loadSegment(s segment, want int64, covered uint64) (segInfo, error) {
	last := want < 0
	info := segInfo{first: s.first, path: s.path}
	f, err := os.Open(s.path)
	if err != nil {
		return info, fmt.Errorf("opening audit segment: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return info, fmt.Errorf("opening audit segment: %w", err)
	}
	size := fi.Size()
	magic := make([]byte, len(segMagic))
	if n, _ := io.ReadFull(f, magic); n < len(segMagic) || string(magic) != segMagic {
		if last && size < int64(len(segMagic)) && s.first >= covered && string(magic[:n]) == segMagic[:n] {
			info.header = true // created, crashed before the magic was whole
			info.torn = &torn{off: 0, index: s.first, bytes: size, reason: errTruncated}
			return info, nil
		}
		return info, &CorruptError{Index: s.first, Reason: fmt.Sprintf("%s is not an audit segment (bad header)", filepath.Base(s.path))}
	}

	start := int64(len(segMagic))
	idxPath := idxPathOf(s.path)
	if b, err := os.ReadFile(idxPath); err == nil {
		k := uint64(len(b) / idxEntrySize)
		if !last && uint64(want) < k {
			k = uint64(want)
		}
		if k > 0 {
			// Spot-check the last entry; if it is wrong, rebuild the index whole.
			e := decodeIdx(b[(k-1)*idxEntrySize:])
			if rec, n, err := readRecordAt(f, e.off); err == nil && rec.Index == s.first+k-1 {
				info.idxKeep, info.count, start = k, k, e.off+int64(n)
			}
		}
		if !last && info.count == uint64(want) {
			info.end = start
			return info, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return info, fmt.Errorf("reading audit index: %w", err)
	}
	if info.idxKeep == 0 {
		info.rebuilt = true
	}

	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return info, fmt.Errorf("reading audit segment: %w", err)
	}
	r := newSegReader(f, start)
	expected := s.first + info.count
	for {
		off := r.off
		rec, err := r.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t, cerr := tornOrCorrupt(f, off, size, expected, covered, last, err)
			if cerr != nil {
				return info, cerr
			}
			info.torn = t // nil: the space after the last record is unused
			break
		}
		if rec.Index != expected {
			return info, &CorruptError{Index: expected, Reason: fmt.Sprintf("the record stored at position %d says it is index %d: records were deleted, duplicated or reordered", expected, rec.Index)}
		}
		e := keysFromJSON(rec.Event).entry(off, rec.Logged)
		info.idxAdd = e.append(info.idxAdd)
		expected++
		info.count++
	}
	info.end = r.off
	if !last && info.count != uint64(want) {
		return info, &CorruptError{Index: s.first + info.count, Reason: fmt.Sprintf("segment %s ends after %d records, want %d: records are missing", filepath.Base(s.path), info.count, want)}
	}
	return info, nil
}

// tornOrCorrupt decides whether what follows the last whole record at off
// is unused space (nil, nil: zeros, as the writer allocates ahead), a torn
// last write (safe to discard: never acknowledged, never signed) or damage
// to the log.
func tornOrCorrupt(f *os.File, off, size int64, index, covered uint64, last bool, cause error) (*torn, error) {
	if !last {
		return nil, &CorruptError{Index: index, Reason: fmt.Sprintf("record damaged (%v) inside a sealed segment", cause)}
	}
	if index < covered {
		return nil, &CorruptError{Index: index, Reason: fmt.Sprintf("record damaged (%v) although a signed checkpoint covers it", cause)}
	}
	n := size - off
	if n > maxTornBytes {
		return nil, &CorruptError{Index: index, Reason: fmt.Sprintf("record damaged (%v) with %d bytes after it: more than a torn write", cause, n)}
	}
	rest := make([]byte, n)
	if _, err := f.ReadAt(rest, off); err != nil && err != io.EOF {
		return nil, fmt.Errorf("reading audit segment tail: %w", err)
	}
	if allZero(rest) {
		// No record has a zero length: nothing was written here (or what
		// was is lost, which a crash beyond the checkpoint may do either
		// way). Either way no record is discarded.
		return nil, nil
	}
	if _, ok := resyncAfter(rest, index); ok {
		return nil, &CorruptError{Index: index, Reason: fmt.Sprintf("record damaged (%v) but whole records follow it: not a torn write", cause)}
	}
	return &torn{off: off, index: index, bytes: n, reason: cause}, nil
}

// readRecordAt reads and checks the record at off.
func readRecordAt(f io.ReaderAt, off int64) (Record, int, error) {
	var hdr [recHeaderSize]byte
	if _, err := f.ReadAt(hdr[:], off); err != nil {
		return Record{}, 0, errTruncated
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < bodyPrefix || n > maxBody {
		return Record{}, 0, errLength
	}
	b := make([]byte, recHeaderSize+int(n)+recTrailer)
	if _, err := f.ReadAt(b, off); err != nil {
		return Record{}, 0, errTruncated
	}
	return decodeRecord(b)
}

func idxPathOf(segPath string) string {
	return segPath[:len(segPath)-len(".seg")] + ".idx"
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
