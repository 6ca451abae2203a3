package audit

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/warden-run/warden/tier"
)

func TestProofsCheckWithOnlyThePublicKey(t *testing.T) {
	key := testKey(t)
	dir := t.TempDir()
	l := openLog(t, dir, testOptions(key, tier.AuditSync))
	for _, n := range []int{1, 10, 37, 64, 100} {
		emitN(t, l, int(l.Size()), n-int(l.Size()))
		if _, err := l.CheckpointNow(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	live, err := l.InclusionProof(context.Background(), 17, 100)
	if err != nil {
		t.Fatal(err)
	}
	closeLog(t, l)

	// The third party has only the verifier key string.
	vkey := strings.TrimSpace(readFile(t, filepath.Join(dir, pubKeyFile)))
	v, err := NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenReader(dir, v)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	for _, i := range []uint64{0, 1, 17, 63, 64, 98, 99} {
		b, err := r.InclusionProof(i)
		if err != nil {
			t.Fatal(err)
		}
		if i == 17 && len(live) != len(b.Proof) {
			t.Errorf("in-process and reader proofs differ")
		}
		// through JSON, as it would travel
		js, _ := json.Marshal(b)
		ib, _, err := ParseBundle(js)
		if err != nil {
			t.Fatal(err)
		}
		cp, ev, err := CheckInclusion(ib, v)
		if err != nil {
			t.Fatalf("index %d: %v", i, err)
		}
		if cp.Size != 100 || !json.Valid(ev) {
			t.Fatalf("index %d: checkpoint %d, event %q", i, cp.Size, ev)
		}
	}
	good, _ := r.InclusionProof(17)
	other := verifierFor(t, testKey(t))
	bad := []struct {
		name string
		edit func(b InclusionBundle) InclusionBundle
		v    bool
	}{
		{"event changed", func(b InclusionBundle) InclusionBundle {
			b.Leaf = append([]byte(nil), b.Leaf...)
			b.Leaf[len(b.Leaf)-3] ^= 1
			return b
		}, false},
		{"claimed index changed", func(b InclusionBundle) InclusionBundle { b.Index = 18; return b }, false},
		{"path hash changed", func(b InclusionBundle) InclusionBundle {
			b.Proof = append([][]byte(nil), b.Proof...)
			b.Proof[0] = make([]byte, 32)
			return b
		}, false},
		{"tree size changed", func(b InclusionBundle) InclusionBundle { b.TreeSize = 64; return b }, false},
		{"checkpoint signed by another key", func(b InclusionBundle) InclusionBundle { return b }, true},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			b := c.edit(*good)
			vv := v
			if c.v {
				vv = other
			}
			if _, _, err := CheckInclusion(&b, vv); err == nil {
				t.Fatal("a bad inclusion proof was accepted")
			}
		})
	}

	for _, old := range []uint64{1, 10, 37, 64, 100} {
		b, err := r.ConsistencyProof(old)
		if err != nil {
			t.Fatal(err)
		}
		if b.OldCheckpoint == "" {
			t.Fatalf("no signed old checkpoint for size %d", old)
		}
		js, _ := json.Marshal(b)
		_, cb, err := ParseBundle(js)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := CheckConsistency(cb, v, nil); err != nil {
			t.Fatalf("consistency from %d: %v", old, err)
		}
		if old > 1 && old < 100 {
			cb.Proof[0][0] ^= 1
			if _, _, err := CheckConsistency(cb, v, nil); err == nil {
				t.Fatalf("a bad consistency proof from %d was accepted", old)
			}
		}
	}
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestExternalCheckpointsCatchARewriteWithTheKey is the attack the external
// sinks exist for: root on the host holds the key, rewrites history and
// re-signs it. The local files then verify; the published checkpoints do not.
func TestExternalCheckpointsCatchARewriteWithTheKey(t *testing.T) {
	key := testKey(t)
	v := verifierFor(t, key)
	ext := filepath.Join(t.TempDir(), "other-mount", "checkpoints")

	var mu sync.Mutex
	var posted []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posted = append(posted, string(b))
		mu.Unlock()
	}))
	defer srv.Close()
	sock := filepath.Join(t.TempDir(), "log.sock")
	syslogd, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer syslogd.Close()

	dir := t.TempDir()
	o := testOptions(key, tier.AuditSync)
	o.Publishers = []Publisher{&FilePublisher{Path: ext}, &HTTPPublisher{URL: srv.URL}, &SyslogPublisher{Network: "unixgram", Address: sock}}
	l := openLog(t, dir, o)
	emitN(t, l, 0, 30)
	if _, err := l.CheckpointNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	emitN(t, l, 30, 20)
	closeLog(t, l)

	notes := SplitNotes([]byte(readFile(t, ext)))
	if len(notes) == 0 {
		t.Fatal("nothing published to the file sink")
	}
	if rep, err := Verify(context.Background(), dir, VerifyOptions{Verifier: v, External: notes}); err != nil || rep.External != len(notes) {
		t.Fatalf("honest log against its published checkpoints: %+v, %v", rep, err)
	}
	mu.Lock()
	if len(posted) == 0 || !strings.HasPrefix(posted[len(posted)-1], testOrigin+"\n50\n") {
		t.Errorf("http sink got %q", posted)
	}
	mu.Unlock()
	buf := make([]byte, 4096)
	n, _, err := syslogd.ReadFrom(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "checkpoint origin="+testOrigin) {
		t.Errorf("syslog got %q, %v", buf[:n], err)
	}

	// resign plays root with the key: it drops every derived and signed file
	// and lets Open rebuild and re-sign whatever the segment now holds.
	resign := func(t *testing.T, d string) {
		for _, f := range []string{hashesFile, idxName(0), checkpointFile, historyFile} {
			os.Remove(filepath.Join(d, f))
		}
		l := openLog(t, d, testOptions(key, tier.AuditSync))
		closeLog(t, l)
	}
	attacks := []struct {
		name  string
		forge func(t *testing.T) string // returns the forged log's directory
		index uint64
		end   uint64
	}{
		{"rewrite record 12 and re-sign everything", func(t *testing.T) string {
			d := copyDir(t, dir)
			b := []byte(readFile(t, segPath(d)))
			sp := recordSpans(t, b)[12]
			r := b[sp.off : sp.off+sp.n]
			i := strings.Index(string(r), "files.read")
			copy(r[i:], "files.wipe")
			binary.BigEndian.PutUint32(r[len(r)-4:], crc32.Checksum(r[:len(r)-4], castagnoli))
			os.WriteFile(segPath(d), b, 0o600)
			resign(t, d)
			return d
		}, 0, 30},
		{"drop the last 10 records and re-sign", func(t *testing.T) string {
			d := copyDir(t, dir)
			b := []byte(readFile(t, segPath(d)))
			os.WriteFile(segPath(d), b[:recordSpans(t, b)[40].off], 0o600)
			resign(t, d)
			return d
		}, 40, 50},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			forged := a.forge(t)
			if _, err := Verify(context.Background(), forged, VerifyOptions{Verifier: v}); err != nil {
				t.Fatalf("the forged log should verify on its own (the attacker holds the key): %v", err)
			}
			_, err := Verify(context.Background(), forged, VerifyOptions{Verifier: v, External: notes})
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Index != a.index || ce.End != a.end {
				t.Fatalf("Verify with external checkpoints = %v, want a CorruptError over [%d, %d)", err, a.index, a.end)
			}
		})
	}
}
