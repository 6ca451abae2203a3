package audit

import (
	"context"
	"sync"
	"testing"

	"github.com/warden-run/warden/tier"
)

func TestAppendCloseVerifyReopen(t *testing.T) {
	for _, mode := range []tier.AuditMode{tier.AuditSync, tier.AuditAsync} {
		t.Run(string(mode), func(t *testing.T) {
			dir := t.TempDir()
			key := testKey(t)
			o := testOptions(key, mode)
			o.SegmentBytes = 16 << 10 // several segments
			l := openLog(t, dir, o)
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					for i := 0; i < 100; i++ {
						if err := l.Emit(context.Background(), testEvent(g*100+i, 300)); err != nil {
							t.Error(err)
							return
						}
					}
				}(g)
			}
			wg.Wait()
			closeLog(t, l)
			v := verifierFor(t, key)
			rep, err := Verify(context.Background(), dir, VerifyOptions{Verifier: v})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if rep.Size != 800 || rep.Newest == nil || rep.Newest.Size != 800 || rep.Uncovered != 0 {
				t.Fatalf("report = %+v", rep)
			}
			l = openLog(t, dir, o)
			emitN(t, l, 800, 10)
			if rep, cp, err := l.Verify(context.Background()); err != nil || rep.Size != 810 || cp.Size != 810 {
				t.Fatalf("live Verify = %+v, %v", rep, err)
			}
			closeLog(t, l)
			rep, err = Verify(context.Background(), dir, VerifyOptions{Verifier: v})
			if err != nil || rep.Size != 810 {
				t.Fatalf("Verify after reopen: %+v, %v", rep, err)
			}
			r, err := OpenReader(dir, v)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			n := 0
			if err := r.Query(context.Background(), Query{Agent: "spiffe://example.org/agent/a1", Task: "t2"}, func(Record) error { n++; return nil }); err != nil {
				t.Fatal(err)
			}
			// i%3==1 && i%5==2 for i in [0,810): i ≡ 7 mod 15
			if want := 54; n != want {
				t.Errorf("query agent+task matched %d, want %d", n, want)
			}
		})
	}
}
