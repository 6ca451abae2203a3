package audit

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/sys/unix"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/tier"
)

// Benchmarks, all in one run (see docs/benchmarks.md for the command):
//
//	BenchmarkFsyncBaseline        write 512 B + fsync / fdatasync on this disk: the floor
//	BenchmarkSyncGroupCommit      events/s in sync mode, many concurrent callers
//	BenchmarkSyncLoneCaller       one caller: latency added over the fsync floor
//	BenchmarkAsync                one caller in async mode
//	BenchmarkVerify1M             verify a 1,000,000-event log (skipped with -short)
//	BenchmarkProofs               inclusion/consistency proof build and check on that log

const benchEventBytes = 512

// syncLatencies measures n appends of 512 bytes, each followed by sync, in dir.
func syncLatencies(b *testing.B, dir string, n int, sync func(*os.File) error) []time.Duration {
	f, err := os.CreateTemp(dir, "fsync")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, benchEventBytes)
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := sync(f); err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Since(t0))
	}
	return out
}

func fsyncFile(f *os.File) error     { return f.Sync() }
func fdatasyncFile(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

func pct(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func BenchmarkFsyncBaseline(b *testing.B) {
	dir := b.TempDir()
	for _, c := range []struct {
		name string
		sync func(*os.File) error
	}{{"fsync", fsyncFile}, {"fdatasync", fdatasyncFile}} {
		b.Run(c.name, func(b *testing.B) {
			lat := syncLatencies(b, dir, max(b.N, 1), c.sync)
			b.ReportMetric(us(pct(lat, 0.5)), "p50-µs")
			b.ReportMetric(us(pct(lat, 0.99)), "p99-µs")
		})
	}
}

func benchEvents(n int) []events.Event {
	evs := make([]events.Event, n)
	for i := range evs {
		evs[i] = testEvent(i, benchEventBytes)
	}
	return evs
}

func BenchmarkSyncGroupCommit(b *testing.B) {
	dir := b.TempDir()
	l := openLog(b, dir, testOptions(testKey(b), tier.AuditSync))
	evs := benchEvents(4096)
	b.SetParallelism(128) // 128 callers per core waiting on their fsync, as a busy gateway
	b.SetBytes(benchEventBytes)
	b.ResetTimer()
	start := time.Now()
	var mu sync.Mutex
	next := 0
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		i := next
		next += 7
		mu.Unlock()
		for pb.Next() {
			if err := l.Emit(context.Background(), evs[i%len(evs)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	el := time.Since(start)
	b.StopTimer()
	st := l.Stats()
	b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
	b.ReportMetric(float64(st.Appended)/float64(max(st.Syncs, 1)), "events/fsync")
	closeLog(b, l)
}

func BenchmarkSyncLoneCaller(b *testing.B) {
	dir := b.TempDir()
	// the fsync floor, measured in this run on this disk, as the baseline
	base := syncLatencies(b, dir, 2000, fdatasyncFile)
	fsyncBase := syncLatencies(b, dir, 2000, fsyncFile)
	l := openLog(b, dir, testOptions(testKey(b), tier.AuditSync))
	evs := benchEvents(1024)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := l.Emit(context.Background(), evs[i%len(evs)]); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	closeLog(b, l)
	p50, fd50, fs50 := pct(lat, 0.5), pct(base, 0.5), pct(fsyncBase, 0.5)
	b.ReportMetric(us(p50), "emit-p50-µs")
	b.ReportMetric(us(pct(lat, 0.99)), "emit-p99-µs")
	b.ReportMetric(us(fd50), "fdatasync-p50-µs")
	b.ReportMetric(us(fs50), "fsync-p50-µs")
	b.ReportMetric(us(p50-fs50), "added-over-fsync-p50-µs")
}

func BenchmarkAsync(b *testing.B) {
	dir := b.TempDir()
	l := openLog(b, dir, testOptions(testKey(b), tier.AuditAsync))
	evs := benchEvents(1024)
	b.SetBytes(benchEventBytes)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := l.Emit(context.Background(), evs[i%len(evs)]); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
	closeLog(b, l)
}

// bigLog builds (once per run) a log of n 512-byte events and returns its
// directory and key. It is written in async mode with a large batch: how it
// was written does not change what verification reads.
type bigLogT struct {
	once sync.Once
	dir  string
	key  ed25519.PrivateKey
	err  error
}

func (g *bigLogT) get(b *testing.B, n int) (string, ed25519.PrivateKey) {
	g.once.Do(func() {
		g.dir, g.err = os.MkdirTemp("", "audit-bench-1m")
		if g.err != nil {
			return
		}
		g.key = testKey(b)
		o := testOptions(g.key, tier.AuditAsync)
		o.MaxPending = 65536
		l, err := Open(context.Background(), g.dir, o)
		if err != nil {
			g.err = err
			return
		}
		evs := benchEvents(4096)
		for i := 0; i < n; i++ {
			if err := l.Emit(context.Background(), evs[i%len(evs)]); err != nil {
				g.err = err
				return
			}
		}
		g.err = l.Close(context.Background())
	})
	if g.err != nil {
		b.Fatal(g.err)
	}
	return g.dir, g.key
}

func BenchmarkVerify1M(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a 1M-event log (~600 MB)")
	}
	var big bigLogT
	dir, key := big.get(b, 1_000_000)
	defer os.RemoveAll(dir)
	v := verifierFor(b, key)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		rep, err := Verify(context.Background(), dir, VerifyOptions{Verifier: v})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Size != 1_000_000 {
			b.Fatalf("verified %d", rep.Size)
		}
		b.ReportMetric(time.Since(t0).Seconds(), "s/verify")
	}
	b.StopTimer()
	var size int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, _ error) error {
		if fi != nil && !fi.IsDir() {
			size += fi.Size()
		}
		return nil
	})
	b.ReportMetric(float64(size)/(1<<20), "MiB-on-disk")

	// Proofs on the same log, reported here so that one run builds it once.
	r, err := OpenReader(dir, v)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	const reps = 2000
	var incl, chk, cons, chkc time.Duration
	for i := 0; i < reps; i++ {
		idx := uint64(i) * 499
		t0 := time.Now()
		ib, err := r.InclusionProof(idx)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, _, err := CheckInclusion(ib, v); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		cb, err := r.ConsistencyProof(idx + 1)
		if err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		oldRoot, err := r.store.root(idx + 1) // what the checker holds: not timed
		if err != nil {
			b.Fatal(err)
		}
		t3 = t3.Add(time.Since(t3))
		// the checker's work: the new checkpoint's signature and the proof
		newCP, err := ParseCheckpoint([]byte(cb.Checkpoint), v)
		if err != nil {
			b.Fatal(err)
		}
		if err := proof.VerifyConsistency(hasher(), idx+1, newCP.Size, cb.Proof, oldRoot, newCP.Root); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		incl += t1.Sub(t0)
		chk += t2.Sub(t1)
		cons += t3.Sub(t2)
		chkc += t4.Sub(t3)
	}
	b.ReportMetric(us(incl/reps), "inclusion-build-µs")
	b.ReportMetric(us(chk/reps), "inclusion-check-µs")
	b.ReportMetric(us(cons/reps), "consistency-build-µs")
	b.ReportMetric(us(chkc/reps), "consistency-check-µs")
}
