package policy

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/warden-run/warden/store"
)

func openStore(t *testing.T) (*Store, *store.DB) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "warden.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := NewStore(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

const (
	permitSearch = `@id("search") permit(principal, action == Action::"call", resource == Tool::"search.query");`
	forbidSearch = `@id("no-search") forbid(principal, action, resource == Tool::"search.query");
@id("all") permit(principal, action, resource);`
)

func TestStoreApplyListActivate(t *testing.T) {
	ctx := context.Background()
	s, db := openStore(t)
	req := call(financeAgent(), searchTool, `{}`)

	if d := s.Decide(ctx, req); d.Code != CodeUnavailable {
		t.Fatalf("before Load: %v", d)
	}
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if d := s.Decide(ctx, req); d.Allow || d.Code != CodeNoPermit {
		t.Fatalf("with nothing applied: %v", d)
	}
	if _, err := s.Active(ctx); !errors.Is(err, ErrNoVersion) {
		t.Fatalf("Active with nothing applied: %v", err)
	}

	v1, err := s.Apply(ctx, "a.cedar", []byte(permitSearch), Meta{By: "alice", Message: "first"})
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Decide(ctx, req); !d.Allow || d.Version != v1.Version {
		t.Fatalf("after apply: %v (version %d)", d, d.Version)
	}
	var ce *CompileError
	if _, err := s.Apply(ctx, "bad.cedar", []byte("permit(principal"), Meta{}); !errors.As(err, &ce) {
		t.Fatalf("bad file: %v", err)
	}
	v2, err := s.Apply(ctx, "b.cedar", []byte(forbidSearch), Meta{By: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Decide(ctx, req); d.Allow || d.Code != CodeForbid || d.Version != v2.Version || d.File != "b.cedar" {
		t.Fatalf("after second apply: %v (version %d)", d, d.Version)
	}

	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Version != v2.Version || !list[0].Active || list[1].Active ||
		list[1].AppliedBy != "alice" || list[1].Message != "first" || list[1].Policies != 1 || list[1].Digest != v1.Digest {
		t.Fatalf("list %+v", list)
	}
	if act, err := s.Active(ctx); err != nil || act.Version != v2.Version {
		t.Fatalf("active %+v %v", act, err)
	}

	if _, err := s.Activate(ctx, v1.Version); err != nil {
		t.Fatal(err)
	}
	if d := s.Decide(ctx, req); !d.Allow || d.Version != v1.Version {
		t.Fatalf("after rollback: %v", d)
	}
	if _, err := s.Activate(ctx, 99); !errors.Is(err, ErrNoVersion) {
		t.Fatalf("activating a missing version: %v", err)
	}
	src, v, err := s.Source(ctx, v2.Version)
	if err != nil || string(src) != forbidSearch || v.Name != "b.cedar" {
		t.Fatalf("source %q %+v %v", src, v, err)
	}

	// Another process (a restart) loads the active version.
	s2, err := NewStore(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if d := s2.Decide(ctx, req); !d.Allow || d.Version != v1.Version {
		t.Fatalf("after reload: %v", d)
	}
}

func TestStoreLoadFailureDenies(t *testing.T) {
	ctx := context.Background()
	s, db := openStore(t)
	if _, err := s.Apply(ctx, "a.cedar", []byte(permitSearch), Meta{}); err != nil {
		t.Fatal(err)
	}
	req := call(financeAgent(), searchTool, `{}`)
	if d := s.Decide(ctx, req); !d.Allow {
		t.Fatalf("%v", d)
	}
	db.Close()
	if err := s.Load(ctx); err == nil {
		t.Fatal("Load on a closed database succeeded")
	}
	for _, d := range []Decision{s.Decide(ctx, req), s.Precheck(ctx, req)} {
		if d.Allow || d.Code != CodeUnavailable {
			t.Fatalf("after a failed load: %v", d)
		}
	}
	if s.Engine().Err() == nil {
		t.Fatal("engine reports no error")
	}
}

func TestStoreCorruptedVersionDenies(t *testing.T) {
	ctx := context.Background()
	s, db := openStore(t)
	if _, err := s.Apply(ctx, "a.cedar", []byte(permitSearch), Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE policy_versions SET source = 'permit(' WHERE version = 1`); err != nil {
		t.Fatal(err)
	}
	if err := s.Load(ctx); err == nil {
		t.Fatal("loaded a corrupted version")
	}
	if d := s.Decide(ctx, call(financeAgent(), searchTool, `{}`)); d.Code != CodeUnavailable {
		t.Fatalf("%v", d)
	}
}

// TestStoreSwapIsAtomic applies two sets in turn while decisions run: each
// decision must be exactly the one its version's set gives.
func TestStoreSwapIsAtomic(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	req := call(financeAgent(), searchTool, `{}`)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				d := s.Decide(ctx, req)
				var want Code
				switch {
				case d.Version == 0:
					want = CodeNoPermit
				case d.Version%2 == 1:
					want = CodePermit
				default:
					want = CodeForbid
				}
				if d.Code != want {
					errs <- errors.New(d.String())
					return
				}
			}
		})
	}
	for i := range 20 {
		src := permitSearch
		if i%2 == 1 {
			src = forbidSearch
		}
		if _, err := s.Apply(ctx, "x.cedar", []byte(src), Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("a decision did not match its version: %v", err)
	default:
	}
}
