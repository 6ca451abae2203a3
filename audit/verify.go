package audit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// VerifyOptions configures Verify.
type VerifyOptions struct {
	// Verifier is the checkpoint key's verifier. Use one held off the host
	// (LoadVerifier) when the host itself is in doubt.
	Verifier note.Verifier
	// External are checkpoint notes kept outside the host (a file sink's
	// file, a witness, a SIEM). Each must be signed by the key and be a
	// prefix of the stored log; that is what catches a rewrite by someone
	// who holds the key.
	External [][]byte
}

// Report is what Verify checked.
type Report struct {
	Size      uint64      // records verified
	Root      []byte      // root hash of the whole stored log
	Newest    *Checkpoint // the newest checkpoint the log holds
	Local     int         // local checkpoints (newest and history) matched
	External  int         // external checkpoints matched
	Uncovered uint64      // records after the newest checkpoint: stored but not yet signed
	TornBytes int64       // bytes of a torn last write, not counted (truncated on next open)
	Warnings  []string
}

type claim struct {
	cp       *Checkpoint
	source   string
	verified bool // signature checked; history entries are checked only on a mismatch
}

// Verify checks the log in dir from its bytes alone: every record's framing,
// checksum and position, every leaf hash, the tree against every checkpoint
// (the newest, the local history and any external ones), and every
// checkpoint's signature. It trusts none of the derived files. Tampering is
// reported as a *CorruptError naming the first index that cannot be vouched
// for; other failures (unreadable files, bad external checkpoints) as plain
// errors. Verify never writes.
func Verify(ctx context.Context, dir string, o VerifyOptions) (*Report, error) {
	if o.Verifier == nil {
		return nil, errors.New("verify: a verifier key is required")
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	rep := &Report{}
	var claims []claim
	var bad []badCheckpoint

	// Local checkpoints: the newest and the history.
	if b, err := os.ReadFile(filepath.Join(dir, checkpointFile)); err == nil {
		if cp, err := ParseCheckpoint(b, o.Verifier); err == nil {
			claims = append(claims, claim{cp, "checkpoint file", true})
			rep.Newest = cp
		} else {
			bad = append(bad, badCheckpoint{claimedSize(b), "checkpoint file", err})
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("verify: reading checkpoint: %w", err)
	}
	hist, herrs := readHistory(dir, nil)
	for _, cp := range hist {
		if cp.Origin != o.Verifier.Name() {
			bad = append(bad, badCheckpoint{cp.Size, "checkpoint history", fmt.Errorf("origin %q is not the key's name %q", cp.Origin, o.Verifier.Name())})
			continue
		}
		claims = append(claims, claim{cp, "checkpoint history", false})
	}
	for _, err := range herrs {
		bad = append(bad, badCheckpoint{0, "checkpoint history", err})
	}
	if len(hist) > 0 && rep.Newest != nil && hist[len(hist)-1].Size > rep.Newest.Size {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the checkpoint file (size %d) is older than the newest in the history (size %d): rolled back?", rep.Newest.Size, hist[len(hist)-1].Size))
	}
	for i, n := range o.External {
		cp, err := ParseCheckpoint(n, o.Verifier)
		if err != nil {
			return nil, fmt.Errorf("external checkpoint %d: %w", i+1, err)
		}
		claims = append(claims, claim{cp, fmt.Sprintf("external checkpoint %d", i+1), true})
	}

	// Checkpoints by size: each is checked when the rebuilt tree reaches it,
	// so the first disagreement in log order is the one reported. Two signed
	// checkpoints of one size with different roots (a fork) fail there too.
	sort.SliceStable(claims, func(i, j int) bool { return claims[i].cp.Size < claims[j].cp.Size })
	if len(bad) > 0 {
		b := bad[0]
		return rep, &CorruptError{Index: goodBelow(claims, b.size), Reason: fmt.Sprintf("%s does not verify (%v): forged, swapped or damaged", b.source, b.err)}
	}
	var covered uint64
	if len(claims) > 0 {
		covered = claims[len(claims)-1].cp.Size
	}

	// Stream every record.
	s := &streamer{claims: claims, verifier: o.Verifier, rng: rangeFactory().NewEmptyRange(0)}
	if hf, err := os.Open(filepath.Join(dir, hashesFile)); err == nil {
		defer hf.Close()
		s.stored = bufio.NewReaderSize(hf, 1<<20)
	}
	if err := s.check(); err != nil {
		return rep, err
	}
	segs, err := listSegments(dir)
	if err != nil {
		return rep, err
	}
	for i, sg := range segs {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if sg.first != s.size() {
			return rep, &CorruptError{Index: s.size(), Reason: fmt.Sprintf("segment %s starts at index %d, want %d: records are missing or duplicated", filepath.Base(sg.path), sg.first, s.size())}
		}
		last := i == len(segs)-1
		tornBytes, err := s.segment(ctx, sg, last, covered)
		if err != nil {
			return rep, err
		}
		rep.TornBytes += tornBytes
	}
	if s.next < len(claims) {
		c := claims[s.next]
		if !c.verified {
			if _, err := ParseCheckpoint(c.cp.Note, o.Verifier); err != nil {
				return rep, &CorruptError{Index: s.good, End: c.cp.Size, Reason: fmt.Sprintf("%s for size %d does not verify (%v): forged or damaged", c.source, c.cp.Size, err)}
			}
		}
		return rep, &CorruptError{Index: s.size(), End: c.cp.Size,
			Reason: fmt.Sprintf("%s was signed for %d records but only %d are stored: records were removed", c.source, c.cp.Size, s.size())}
	}
	rep.Size = s.size()
	if rep.Size == 0 {
		rep.Root = hasher().EmptyRoot()
	} else {
		rep.Root, _ = s.rng.GetRootHash(nil)
	}
	for _, c := range claims {
		if c.source == "checkpoint file" || c.source == "checkpoint history" {
			rep.Local++
		}
	}
	rep.External = len(claims) - rep.Local
	if rep.Newest != nil {
		rep.Uncovered = rep.Size - rep.Newest.Size
	} else {
		rep.Uncovered = rep.Size
	}
	return rep, nil
}

type badCheckpoint struct {
	size   uint64
	source string
	err    error
}

// claimedSize reads the size a note claims without trusting it.
func claimedSize(b []byte) uint64 {
	i := bytes.LastIndex(b, []byte("\n\n"))
	if i < 0 {
		return 0
	}
	_, size, _, err := parseCheckpointText(string(b[:i+1]))
	if err != nil {
		return 0
	}
	return size
}

// goodBelow is the size of the largest verified checkpoint below size: the
// records up to it are vouched for by a good signature.
func goodBelow(claims []claim, size uint64) uint64 {
	var g uint64
	for _, c := range claims {
		if c.cp.Size < size && c.cp.Size > g {
			g = c.cp.Size
		}
	}
	return g
}

// streamer rebuilds the tree record by record and checks it against the
// checkpoints in order of size.
type streamer struct {
	claims   []claim
	verifier note.Verifier
	next     int // first claim not yet reached
	good     uint64
	rng      *compact.Range

	stored    *bufio.Reader // the derived tree file, for a hint only
	storedPos uint64
	hint      int64 // first leaf whose stored hash differs, when hintSet
	hintSet   bool
}

func (s *streamer) size() uint64 { return s.rng.End() }

func (s *streamer) add(body []byte) error {
	h := leafHash(body)
	s.compareStored(h[:])
	if err := s.rng.Append(h[:], nil); err != nil {
		return err
	}
	return s.check()
}

// compareStored remembers the first leaf whose hash differs from the derived
// tree file: when a checkpoint root disagrees, it hints where to look.
func (s *streamer) compareStored(h []byte) {
	if s.stored == nil || s.hintSet {
		return
	}
	i := s.size()
	pos := nodePos(0, i)
	if _, err := s.stored.Discard(int((pos - s.storedPos) * hashSize)); err != nil {
		s.stored = nil
		return
	}
	var got [hashSize]byte
	if _, err := io.ReadFull(s.stored, got[:]); err != nil {
		s.stored = nil
		return
	}
	s.storedPos = pos + 1
	if !bytes.Equal(got[:], h) {
		s.hint, s.hintSet = int64(i), true
	}
}

func (s *streamer) check() error {
	matched := false
	for s.next < len(s.claims) && s.claims[s.next].cp.Size == s.size() {
		c := s.claims[s.next]
		var root []byte
		if s.size() == 0 {
			root = hasher().EmptyRoot()
		} else {
			root, _ = s.rng.GetRootHash(nil)
		}
		if !bytes.Equal(root, c.cp.Root) {
			if !c.verified {
				if _, err := ParseCheckpoint(c.cp.Note, s.verifier); err != nil {
					return &CorruptError{Index: s.good, End: c.cp.Size, Reason: fmt.Sprintf("%s for size %d does not verify (%v): forged or damaged", c.source, c.cp.Size, err)}
				}
			}
			reason := fmt.Sprintf("the records do not match %s signed for size %d: a record before it was changed, removed, inserted or reordered", c.source, c.cp.Size)
			if s.hintSet && uint64(s.hint) >= s.good && uint64(s.hint) < c.cp.Size {
				reason += fmt.Sprintf("; the first record whose hash differs from the stored tree is %d", s.hint)
			}
			return &CorruptError{Index: s.good, End: c.cp.Size, Reason: reason}
		}
		matched = true
		s.next++
	}
	if matched {
		s.good = s.size() // only once every claim of this size agrees
	}
	return nil
}

// segment streams one segment; it returns the bytes of a torn tail.
func (s *streamer) segment(ctx context.Context, sg segment, last bool, covered uint64) (int64, error) {
	f, err := os.Open(sg.path)
	if err != nil {
		return 0, fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("verify: %w", err)
	}
	magic := make([]byte, len(segMagic))
	if n, _ := io.ReadFull(f, magic); n < len(segMagic) || string(magic) != segMagic {
		if last && fi.Size() < int64(len(segMagic)) && sg.first >= covered {
			return fi.Size(), nil
		}
		return 0, &CorruptError{Index: sg.first, Reason: fmt.Sprintf("%s is not an audit segment (bad header)", filepath.Base(sg.path))}
	}
	r := newSegReader(f, int64(len(segMagic)))
	for n := 0; ; n++ {
		if n&0xffff == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		off := r.off
		rec, err := r.next()
		if err == io.EOF {
			return 0, nil
		}
		expected := s.size()
		if err != nil {
			t, cerr := tornOrCorrupt(f, off, fi.Size(), expected, covered, last, err)
			if cerr != nil || t == nil {
				return 0, cerr // nil, nil: unused space after the last record
			}
			return t.bytes, nil
		}
		if rec.Index != expected {
			return 0, &CorruptError{Index: expected, Reason: fmt.Sprintf("the record stored at position %d says it is index %d: records were deleted, duplicated or reordered", expected, rec.Index)}
		}
		if err := s.add(rec.body); err != nil {
			return 0, err
		}
	}
}
