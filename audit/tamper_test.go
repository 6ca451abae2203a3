package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/warden-run/warden/tier"
)

// span is where one record sits in a segment file.
type span struct{ off, n int }

func recordSpans(t testing.TB, b []byte) []span {
	t.Helper()
	var out []span
	for off := len(segMagic); off < len(b); {
		_, n, err := decodeRecord(b[off:])
		if err != nil {
			t.Fatalf("test fixture: record at %d: %v", off, err)
		}
		out = append(out, span{off, n})
		off += n
	}
	return out
}

func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// buildLog writes 50 events with checkpoints signed at sizes 10, 30 and 50.
func buildLog(t testing.TB, key ed25519.PrivateKey, first int) string {
	t.Helper()
	dir := t.TempDir()
	l := openLog(t, dir, testOptions(key, tier.AuditSync))
	for _, upTo := range []int{10, 30} {
		emitN(t, l, first+int(l.Size()), upTo-int(l.Size()))
		if _, err := l.CheckpointNow(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	emitN(t, l, first+30, 20)
	closeLog(t, l)
	return dir
}

func segPath(dir string) string { return filepath.Join(dir, segName(0)) }

func TestVerifyPinpointsTampering(t *testing.T) {
	key := testKey(t)
	v := verifierFor(t, key)
	honest := buildLog(t, key, 0)
	if rep, err := Verify(context.Background(), honest, VerifyOptions{Verifier: v}); err != nil || rep.Size != 50 || rep.Local != 4 {
		t.Fatalf("honest log: %+v, %v", rep, err)
	}
	other := buildLog(t, key, 1000) // another log, same key and origin
	otherCP, err := os.ReadFile(filepath.Join(other, checkpointFile))
	if err != nil {
		t.Fatal(err)
	}
	foreignKey := testKey(t)
	foreignCP, err := signCheckpoint(mustSigner(t, foreignKey), 50, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}

	editSeg := func(f func(b []byte, s []span) []byte) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			b, err := os.ReadFile(segPath(dir))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(segPath(dir), f(b, recordSpans(t, b)), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name      string
		tamper    func(t *testing.T, dir string)
		index     uint64
		end       uint64
		wantWords string
	}{
		{"flip a byte in record 17", editSeg(func(b []byte, s []span) []byte {
			b[s[17].off+s[17].n/2] ^= 0x01
			return b
		}), 17, 0, "checksum"},
		{"delete record 17", editSeg(func(b []byte, s []span) []byte {
			return append(b[:s[17].off:s[17].off], b[s[18].off:]...)
		}), 17, 0, "says it is index 18"},
		{"reorder records 17 and 18", editSeg(func(b []byte, s []span) []byte {
			out := append([]byte(nil), b[:s[17].off]...)
			out = append(out, b[s[18].off:s[18].off+s[18].n]...)
			out = append(out, b[s[17].off:s[17].off+s[17].n]...)
			return append(out, b[s[19].off:]...)
		}), 17, 0, "reordered"},
		{"flip a byte in the last record", editSeg(func(b []byte, s []span) []byte {
			b[s[49].off+20] ^= 0x80
			return b
		}), 49, 0, "checkpoint covers it"},
		{"delete the last record", editSeg(func(b []byte, s []span) []byte {
			return b[:s[49].off]
		}), 49, 50, "records were removed"},
		{"rewrite record 17 with a valid checksum", editSeg(func(b []byte, s []span) []byte {
			r := b[s[17].off : s[17].off+s[17].n]
			i := strings.Index(string(r), "tools/call")
			copy(r[i:], "tools/list")
			binary.BigEndian.PutUint32(r[len(r)-4:], crc32.Checksum(r[:len(r)-4], castagnoli))
			return b
		}), 10, 30, "first record whose hash differs from the stored tree is 17"},
		{"swap the checkpoint for one signed by another key", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, checkpointFile), foreignCP.Note, 0o644); err != nil {
				t.Fatal(err)
			}
		}, 30, 0, "checkpoint file does not verify"},
		{"append a forged checkpoint to the history", func(t *testing.T, dir string) {
			appendFile(t, filepath.Join(dir, historyFile), foreignCP.Note)
		}, 30, 50, "checkpoint history for size 50 does not verify"},
		{"append a forged checkpoint beyond the log to the history", func(t *testing.T, dir string) {
			cp, err := signCheckpoint(mustSigner(t, foreignKey), 70, make([]byte, 32))
			if err != nil {
				t.Fatal(err)
			}
			appendFile(t, filepath.Join(dir, historyFile), cp.Note)
		}, 50, 70, "does not verify"},
		{"swap the checkpoint for another log's of the same size", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, checkpointFile), otherCP, 0o644); err != nil {
				t.Fatal(err)
			}
		}, 30, 50, "do not match checkpoint file signed for size 50"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, honest)
			c.tamper(t, dir)
			_, err := Verify(context.Background(), dir, VerifyOptions{Verifier: v})
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("Verify = %v, want a CorruptError", err)
			}
			if ce.Index != c.index || ce.End != c.end || !strings.Contains(ce.Reason, c.wantWords) {
				t.Fatalf("Verify = %v (index %d, end %d), want index %d, end %d, mentioning %q", ce, ce.Index, ce.End, c.index, c.end, c.wantWords)
			}
			// The writer refuses such a log too, or at least never vouches
			// for it: if it opens, verify still fails after it closes.
			o := testOptions(key, tier.AuditSync)
			o.VerifyOnOpen = true
			if l, err := Open(context.Background(), dir, o); err == nil {
				l.Close(context.Background())
				t.Fatalf("Open with VerifyOnOpen accepted a tampered log")
			}
		})
	}
}

func mustSigner(t testing.TB, key ed25519.PrivateKey) note.Signer {
	t.Helper()
	s, err := NewSigner(testOrigin, key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
