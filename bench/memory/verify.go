package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/warden-run/warden/audit"
	"github.com/warden-run/warden/memory"
	"github.com/warden-run/warden/store"
	"github.com/warden-run/warden/tier"
)

// verification times what `warden memory verify` does over a store of
// o.verifyEntries entries in o.verifyNamespaces namespaces: the audit log's
// own verification, the scan of its memory_write records, and Store.Verify
// on a fresh Store (no signature cached: every hash recomputed, every
// signature checked, every record compared).
func verification(ctx context.Context, o *options, w io.Writer) error {
	tmp, err := os.MkdirTemp("", "bench-memory-verify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	db, err := store.Open(ctx, filepath.Join(tmp, "warden.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	// Filling is not what is measured: one connection without fsync makes
	// it take seconds instead of one fsync per entry.
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "PRAGMA synchronous=OFF"); err != nil {
		return err
	}
	akey, err := audit.EnsureKey(filepath.Join(tmp, "checkpoint.key"))
	if err != nil {
		return err
	}
	adir := filepath.Join(tmp, "audit")
	alog, err := audit.Open(ctx, adir, audit.Options{Key: akey, Origin: "bench.test/warden/audit", Mode: tier.AuditAsync, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	st, err := memory.OpenStore(ctx, memory.StoreOptions{DB: db, Key: key, Events: alog})
	if err != nil {
		return err
	}
	start := time.Now()
	for i := range o.verifyEntries {
		e := memory.Entry{NS: fmt.Sprintf("agent/bench-%03d", i%o.verifyNamespaces), Agent: "spiffe://bench.test/agent/bench",
			Task: "t_bench", Session: "s_bench", Call: fmt.Sprintf("c%d", i), Trust: memory.Trusted, Status: memory.Active}
		n := i / o.verifyNamespaces
		if n%2 == 0 {
			e.Op = memory.OpCreateEntities
			e.Payload, _ = json.Marshal(map[string]any{"entities": []map[string]any{{"name": fmt.Sprintf("entity-%d", n), "entityType": "customer",
				"observations": []string{fmt.Sprintf("entity-%d signed up in 2025", n), "prefers email"}}}})
		} else {
			e.Op = memory.OpAddObservations
			e.Payload, _ = json.Marshal(map[string]any{"observations": []map[string]any{{"entityName": fmt.Sprintf("entity-%d", n-1),
				"contents": []string{fmt.Sprintf("observation %d, added later", n)}}}})
		}
		if _, err := st.Append(ctx, e); err != nil {
			return err
		}
	}
	fill := time.Since(start)
	if err := alog.Close(ctx); err != nil {
		return err
	}
	var dbBytes int64
	if fi, err := os.Stat(filepath.Join(tmp, "warden.db")); err == nil {
		dbBytes = fi.Size()
	}
	fmt.Fprintf(w, "\nverification of %d entries in %d namespaces (filled in %.1fs, not measured; database %d MiB, OS cache warm):\n",
		o.verifyEntries, o.verifyNamespaces, fill.Seconds(), dbBytes>>20)

	v, err := audit.LocalVerifier(adir)
	if err != nil {
		return err
	}
	start = time.Now()
	arep, err := audit.Verify(ctx, adir, audit.VerifyOptions{Verifier: v})
	if err != nil {
		return err
	}
	tAudit := time.Since(start)

	start = time.Now()
	r, err := audit.OpenReader(adir, v)
	if err != nil {
		return err
	}
	rec := map[string]string{}
	err = r.Scan(ctx, 0, func(x audit.Record) error {
		if id, h, ok := memory.RecordedWrite(x.Event); ok {
			rec[id] = h
		}
		return nil
	})
	r.Close()
	if err != nil {
		return err
	}
	tScan := time.Since(start)

	fresh, err := memory.OpenStore(ctx, memory.StoreOptions{DB: db, Public: key.Public().(ed25519.PublicKey)})
	if err != nil {
		return err
	}
	start = time.Now()
	rep, err := fresh.Verify(ctx, rec)
	if err != nil {
		return err
	}
	tCold := time.Since(start)
	if rep.Entries != o.verifyEntries || rep.Verified != o.verifyEntries || rep.Checked != o.verifyEntries || len(rep.Problems) > 0 {
		return fmt.Errorf("verification went wrong: %+v", rep)
	}
	start = time.Now()
	if _, err := fresh.Verify(ctx, rec); err != nil {
		return err
	}
	tWarm := time.Since(start)

	rate := func(d time.Duration) string {
		return fmt.Sprintf("%.0f entries/s", float64(o.verifyEntries)/d.Seconds())
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  audit.Verify: the log itself (%d records, every leaf and checkpoint)\t%.2fs\t\n", arep.Size, tAudit.Seconds())
	fmt.Fprintf(tw, "  scan of the log for its memory_write records (%d)\t%.2fs\t\n", len(rec), tScan.Seconds())
	fmt.Fprintf(tw, "  Store.Verify, cold: every hash, signature and link; against the log\t%.2fs\t%s\n", tCold.Seconds(), rate(tCold))
	total := tAudit + tScan + tCold
	fmt.Fprintf(tw, "  all of `warden memory verify`\t%.2fs\t%s\n", total.Seconds(), rate(total))
	fmt.Fprintf(tw, "  Store.Verify again, same Store (signatures cached, as in serve)\t%.2fs\t%s\n", tWarm.Seconds(), rate(tWarm))
	return tw.Flush()
}
