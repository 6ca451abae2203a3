package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The parsers of untrusted input: segment records, segment files, checkpoint
// notes (single and concatenated), proof bundles. None may panic, and what
// they accept must be self-consistent.

func FuzzDecodeRecord(f *testing.F) {
	rec, _ := appendRecord(nil, 7, time.Now().UnixNano(), []byte(`{"class_uid":6003}`))
	f.Add(rec)
	f.Add(rec[:len(rec)-1])
	f.Add([]byte{0, 0, 0, 16})
	f.Add(append(append([]byte(nil), rec...), rec...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := decodeRecord(b)
		if err != nil {
			return
		}
		if n > len(b) || n != recOverhead+len(r.Event) {
			t.Fatalf("decoded length %d of %d bytes, event %d", n, len(b), len(r.Event))
		}
		again, _ := appendRecord(nil, r.Index, r.Logged, r.Event)
		if string(again) != string(b[:n]) {
			t.Fatal("an accepted record does not re-encode to the same bytes")
		}
		resyncAfter(b, r.Index)
	})
}

func FuzzLoadSegment(f *testing.F) {
	var seg []byte
	seg = append(seg, segMagic...)
	for i := 0; i < 3; i++ {
		seg, _ = appendRecord(seg, uint64(i), int64(i), []byte(`{"time":1,"metadata":{"uid":"x"}}`))
	}
	f.Add(seg, uint64(0))
	f.Add(seg[:len(seg)-5], uint64(2))
	f.Add([]byte(segMagic[:4]), uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, covered uint64) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(0)), b, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := loadState(dir, covered%8)
		if err != nil {
			return
		}
		if st.size > uint64(len(b)/recOverhead) {
			t.Fatalf("%d records in %d bytes", st.size, len(b))
		}
		n := uint64(0)
		if err := scanRecords(st.segs, 0, func(r Record) error { n++; return nil }); err != nil {
			t.Fatalf("a loaded segment does not scan: %v", err)
		}
		if n != st.size {
			t.Fatalf("scanned %d of %d", n, st.size)
		}
	})
}

func fuzzKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
}

func FuzzParseCheckpoint(f *testing.F) {
	key := fuzzKey()
	s, _ := NewSigner(testOrigin, key)
	cp, _ := signCheckpoint(s, 42, make([]byte, 32))
	f.Add(cp.Note)
	f.Add(append(append([]byte(nil), cp.Note...), cp.Note...))
	f.Add([]byte(testOrigin + "\n042\nAAAA\n\n— x AAAA\n"))
	vk, _ := VerifierKey(testOrigin, key.Public().(ed25519.PublicKey))
	v, _ := NewVerifier(vk)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, n := range SplitNotes(b) {
			got, err := ParseCheckpoint(n, v)
			if err != nil {
				continue
			}
			if got.Origin != testOrigin || len(got.Root) != hashSize {
				t.Fatalf("accepted %+v", got)
			}
		}
		parseCheckpointText(string(b))
		claimedSize(b)
	})
}

func FuzzCheckProof(f *testing.F) {
	key := fuzzKey()
	dir := f.TempDir()
	o := testOptions(key, "sync")
	l, err := Open(context.Background(), dir, o)
	if err != nil {
		f.Fatal(err)
	}
	emitN(f, l, 0, 9)
	l.Close(context.Background())
	vk, _ := VerifierKey(testOrigin, key.Public().(ed25519.PublicKey))
	v, _ := NewVerifier(vk)
	r, err := OpenReader(dir, v)
	if err != nil {
		f.Fatal(err)
	}
	ib, _ := r.InclusionProof(4)
	cb, _ := r.ConsistencyProof(3)
	r.Close()
	for _, b := range []any{ib, cb} {
		js, _ := json.Marshal(b)
		f.Add(js)
	}
	f.Add([]byte(`{"kind":"inclusion","index":1,"tree_size":1,"leaf":"","proof":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ib, cb, err := ParseBundle(b)
		if err != nil {
			return
		}
		if ib != nil {
			CheckInclusion(ib, v)
		}
		if cb != nil {
			CheckConsistency(cb, v, nil)
		}
	})
}
