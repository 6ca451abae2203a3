package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenCreatesPrivateWALDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "warden.db")
	db := open(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database mode %v, want 0600", fi.Mode().Perm())
	}
	var fk int
	if err := db.QueryRow("PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign keys off (%d, %v)", fk, err)
	}
}

func TestMigrateRunsEachStepOnceAndRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warden.db")
	db := open(t, path)
	steps := []string{
		`CREATE TABLE things (id INTEGER PRIMARY KEY)`,
		`ALTER TABLE things ADD COLUMN name TEXT`,
	}
	for i := 0; i < 2; i++ {
		if err := db.Migrate(ctx, "things", steps); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	if _, err := db.Exec(`INSERT INTO things(name) VALUES('x')`); err != nil {
		t.Fatal(err)
	}
	err := db.Migrate(ctx, "things", steps[:1])
	if err == nil || !strings.Contains(err.Error(), "newer than this Warden") {
		t.Fatalf("older code accepted a newer schema: %v", err)
	}
	// A failing step leaves the recorded version where it was.
	bad := append(steps, `CREATE TABLE things (id INTEGER)`)
	if err := db.Migrate(ctx, "things", bad); err == nil {
		t.Fatal("failing migration reported success")
	}
	var v int
	if err := db.QueryRow(`SELECT version FROM schema_migrations WHERE component='things'`).Scan(&v); err != nil || v != 2 {
		t.Fatalf("version = %d, %v; want 2", v, err)
	}
}

func TestInTxRollsBackOnError(t *testing.T) {
	ctx := context.Background()
	db := open(t, filepath.Join(t.TempDir(), "warden.db"))
	if err := db.Migrate(ctx, "t", []string{`CREATE TABLE t (v INTEGER)`}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO t VALUES (1)`); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	var n int
	db.QueryRow(`SELECT count(*) FROM t`).Scan(&n)
	if n != 0 {
		t.Fatal("rolled-back insert is visible")
	}
}

func TestOpenRefusesCorruptedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warden.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database ", 512)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), path); err == nil {
		t.Fatal("opened a corrupted database")
	}
}

// Many writers at once, each transaction doing a little work between its
// statements: with SQLite's own retries alone some of them outwait a short
// busy timeout and fail with SQLITE_BUSY; serialised in the process, none do.
func TestConcurrentWritersDoNotFailBusy(t *testing.T) {
	ctx := context.Background()
	db, err := openBusy(ctx, filepath.Join(t.TempDir(), "warden.db"), 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, "t", []string{`CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)`}); err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 40
	errc := make(chan error, writers*each*2)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				k := w*each + i
				errc <- db.InTx(ctx, func(tx *sql.Tx) error {
					if _, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, 0)`, k); err != nil {
						return err
					}
					time.Sleep(200 * time.Microsecond) // the signing, hashing or reading a real transaction does
					_, err := tx.ExecContext(ctx, `UPDATE t SET v = v + 1 WHERE k = ?`, k)
					return err
				})
				_, err := db.ExecContext(ctx, `UPDATE t SET v = v + 1 WHERE k = ?`, k)
				errc <- err
			}
		})
	}
	wg.Wait()
	close(errc)
	failed := 0
	for err := range errc {
		if err != nil {
			if failed == 0 {
				t.Errorf("a write failed: %v", err)
			}
			failed++
		}
	}
	var n, sum int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(v), 0) FROM t`).Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	if failed > 0 || n != writers*each || sum != 2*writers*each {
		t.Errorf("%d writes failed; %d rows summing to %d, want %d and %d", failed, n, sum, writers*each, 2*writers*each)
	}
}
