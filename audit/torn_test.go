package audit

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/tier"
)

// rawRecords encodes records with the given indexes, as the writer would.
func rawRecords(t *testing.T, from, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for i := from; i < from+n; i++ {
		e := testEvent(i, 200)
		b, err := json.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		rec, _ := appendRecord(nil, uint64(i), time.Now().UnixNano(), b)
		out = append(out, rec)
	}
	return out
}

func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func TestTornTailIsTruncatedAndRecorded(t *testing.T) {
	key := testKey(t)
	v := verifierFor(t, key)
	cases := []struct {
		name string
		tail func(t *testing.T) []byte
	}{
		{"half a record", func(t *testing.T) []byte { r := rawRecords(t, 20, 1)[0]; return r[:len(r)/2] }},
		{"three bytes of a length", func(t *testing.T) []byte { return rawRecords(t, 20, 1)[0][:3] }},
		{"whole length, bad checksum", func(t *testing.T) []byte {
			r := rawRecords(t, 20, 1)[0]
			r[len(r)-1] ^= 0xff
			return r
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, testOptions(key, tier.AuditSync))
			emitN(t, l, 0, 20)
			closeLog(t, l)
			appendFile(t, segPath(dir), c.tail(t))

			// verify counts a torn tail beyond the checkpoint but does not fail on it
			rep, err := Verify(context.Background(), dir, VerifyOptions{Verifier: v})
			if err != nil || rep.Size != 20 || rep.TornBytes == 0 {
				t.Fatalf("Verify before repair = %+v, %v; want 20 records and a torn tail", rep, err)
			}
			l = openLog(t, dir, testOptions(key, tier.AuditSync))
			closeLog(t, l)
			rep, err = Verify(context.Background(), dir, VerifyOptions{Verifier: v})
			if err != nil || rep.TornBytes != 0 || rep.Size != 21 {
				t.Fatalf("Verify after repair = %+v, %v; want 21 records (20 + the truncation finding)", rep, err)
			}
			r, err := OpenReader(dir, v)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			rec, err := r.Record(20)
			if err != nil {
				t.Fatal(err)
			}
			var e events.Event
			if err := json.Unmarshal(rec.Event, &e); err != nil {
				t.Fatal(err)
			}
			if e.ClassUID != events.ClassDetectionFinding || e.Warden == nil || e.Warden.Reason != "audit_torn_tail_truncated" || e.Warden.Attrs["index"] != "20" {
				t.Fatalf("record 20 is %s, want the truncation finding", rec.Event)
			}
		})
	}
}

// Zeros after the last record are space the writer allocated ahead (or a
// page a crash lost before anything was acknowledged in it): no record is
// there, so nothing is reported and the log goes on after its last record.
func TestZeroTailIsUnusedSpace(t *testing.T) {
	key := testKey(t)
	v := verifierFor(t, key)
	dir := t.TempDir()
	l := openLog(t, dir, testOptions(key, tier.AuditSync))
	emitN(t, l, 0, 20)
	closeLog(t, l)
	appendFile(t, segPath(dir), make([]byte, 3*4096))

	rep, err := Verify(context.Background(), dir, VerifyOptions{Verifier: v})
	if err != nil || rep.Size != 20 || rep.TornBytes != 0 {
		t.Fatalf("Verify = %+v, %v; want 20 records and no torn tail", rep, err)
	}
	l = openLog(t, dir, testOptions(key, tier.AuditSync))
	emitN(t, l, 20, 5)
	closeLog(t, l)
	rep, err = Verify(context.Background(), dir, VerifyOptions{Verifier: v})
	if err != nil || rep.Size != 25 || rep.TornBytes != 0 {
		t.Fatalf("Verify after appending = %+v, %v; want 25 records (no truncation finding)", rep, err)
	}
}

// A segment's space is allocated ahead of its records while the log is
// open, and a closed log's segment ends with its last record.
func TestSegmentSpaceIsAllocatedAheadAndTrimmed(t *testing.T) {
	key := testKey(t)
	dir := t.TempDir()
	l := openLog(t, dir, testOptions(key, tier.AuditSync))
	emitN(t, l, 0, 10)
	fi, err := os.Stat(segPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size()%preallocStep != 0 {
		t.Logf("segment is %d bytes while open: this file system does not allocate ahead", fi.Size())
	}
	closeLog(t, l)
	fi, err = os.Stat(segPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(segPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() >= preallocStep || len(b) > 0 && b[len(b)-1] == 0 && allZero(b[len(b)-8:]) {
		t.Fatalf("closed segment is %d bytes and ends in zeros; want it cut to its records", fi.Size())
	}
}

func TestDamageThatIsNotATornWriteIsRefused(t *testing.T) {
	key := testKey(t)
	cases := []struct {
		name   string
		build  func(t *testing.T, dir string)
		index  uint64
		reason string
	}{
		{"damaged record followed by whole records", func(t *testing.T, dir string) {
			// Records 20..22 were written after the last checkpoint (a crash
			// before the next one); then record 20 was damaged.
			recs := rawRecords(t, 20, 3)
			recs[0][30] ^= 0x01
			for _, r := range recs {
				appendFile(t, segPath(dir), r)
			}
		}, 20, "whole records follow"},
		{"damaged record inside a sealed segment", func(t *testing.T, dir string) {
			appendFile(t, segPath(dir), rawRecords(t, 20, 1)[0][:10])
			// a later segment exists, so the damage is not at the end
			if err := os.WriteFile(filepath.Join(dir, segName(21)), []byte(segMagic), 0o600); err != nil {
				t.Fatal(err)
			}
		}, 20, "sealed segment"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, testOptions(key, tier.AuditSync))
			emitN(t, l, 0, 20)
			closeLog(t, l)
			c.build(t, dir)
			_, err := Open(context.Background(), dir, testOptions(key, tier.AuditSync))
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Index != c.index || !strings.Contains(ce.Reason, c.reason) {
				t.Fatalf("Open = %v, want refusal at index %d mentioning %q", err, c.index, c.reason)
			}
			_, err = Verify(context.Background(), dir, VerifyOptions{Verifier: verifierFor(t, key)})
			if !errors.As(err, &ce) || ce.Index != c.index {
				t.Fatalf("Verify = %v, want failure at index %d", err, c.index)
			}
		})
	}
}

func TestTornSegmentHeaderIsRepaired(t *testing.T) {
	key := testKey(t)
	dir := t.TempDir()
	l := openLog(t, dir, testOptions(key, tier.AuditSync))
	emitN(t, l, 0, 5)
	closeLog(t, l)
	// crash right after creating the next segment
	if err := os.WriteFile(filepath.Join(dir, segName(5)), []byte(segMagic[:3]), 0o600); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, testOptions(key, tier.AuditSync))
	emitN(t, l, 5, 5)
	closeLog(t, l)
	rep, err := Verify(context.Background(), dir, VerifyOptions{Verifier: verifierFor(t, key)})
	if err != nil || rep.Size != 11 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

func TestDerivedFilesAreRebuilt(t *testing.T) {
	key := testKey(t)
	v := verifierFor(t, key)
	for _, victim := range []string{hashesFile, idxName(0)} {
		for _, how := range []string{"deleted", "truncated", "garbled"} {
			t.Run(victim+" "+how, func(t *testing.T) {
				dir := t.TempDir()
				l := openLog(t, dir, testOptions(key, tier.AuditSync))
				emitN(t, l, 0, 40)
				closeLog(t, l)
				p := filepath.Join(dir, victim)
				switch how {
				case "deleted":
					os.Remove(p)
				case "truncated":
					fi, _ := os.Stat(p)
					os.Truncate(p, fi.Size()/3)
				case "garbled":
					b, _ := os.ReadFile(p)
					for i := len(b) / 2; i < len(b); i++ {
						b[i] ^= 0x5a
					}
					os.WriteFile(p, b, 0o600)
				}
				l = openLog(t, dir, testOptions(key, tier.AuditSync))
				emitN(t, l, 40, 2)
				closeLog(t, l)
				if _, err := Verify(context.Background(), dir, VerifyOptions{Verifier: v}); err != nil {
					t.Fatal(err)
				}
				r, err := OpenReader(dir, v)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				for _, i := range []uint64{0, 17, 41} {
					b, err := r.InclusionProof(i)
					if err != nil {
						t.Fatal(err)
					}
					if _, _, err := CheckInclusion(b, v); err != nil {
						t.Fatalf("proof of %d after rebuild: %v", i, err)
					}
				}
				n := 0
				r.Query(context.Background(), Query{Task: "t3"}, func(Record) error { n++; return nil })
				if n != 8 { // i%5==3 for i in [0,42)
					t.Errorf("query after rebuild found %d, want 8", n)
				}
			})
		}
	}
}
