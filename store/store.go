// Package store owns Warden's persistent database: opening it, migrating its
// schema and running transactions. The embedded default is SQLite
// (modernc.org/sqlite, pure Go, WAL mode).
//
// Each part of Warden owns its own tables and their SQL, and registers its
// schema here as a named list of migrations; store knows nothing of agents,
// grants or memory. It never caches rows and never decides anything.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DB is an open Warden database.
type DB struct {
	*sql.DB
	path string
	// write serialises this process's writes (InTx and ExecContext).
	// SQLite lets one writer in at a time and makes the others retry after
	// growing sleeps; under a burst of writers one of them can lose every
	// retry until busy_timeout runs out and fail with SQLITE_BUSY (seen
	// when the red-team runner registered agents from many goroutines on
	// two busy cores). Waiting here instead is first come, first served
	// and spends no time asleep while the lock is free. busy_timeout still
	// covers writers in other processes (the CLI beside a running serve).
	write sync.Mutex
}

// busyTimeout is how long a writer waits for another process's.
const busyTimeout = 5 * time.Second

// Open opens (creating if needed) the SQLite database at path in WAL mode,
// with foreign keys enforced and writers waiting up to five seconds for one
// another. The file is created with mode 0600.
func Open(ctx context.Context, path string) (*DB, error) {
	return openBusy(ctx, path, busyTimeout)
}

func openBusy(ctx context.Context, path string, busy time.Duration) (*DB, error) {
	if err := ensureFile(path); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("opening database %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening database %s: %w", path, err)
	}
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		db.Close()
		return nil, fmt.Errorf("opening database %s: journal mode is %q, want wal (%v)", path, mode, err)
	}
	var check string
	if err := db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&check); err != nil || check != "ok" {
		db.Close()
		if err == nil {
			err = errors.New(check)
		}
		return nil, fmt.Errorf("database %s is corrupted: %w", path, err)
	}
	d := &DB{DB: db, path: path}
	if err := d.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		component TEXT PRIMARY KEY,
		version   INTEGER NOT NULL
	)`); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening database %s: %w", path, err)
	}
	return d, nil
}

// ensureFile creates the database file with mode 0600 if it does not exist,
// so the driver never creates it with the process umask.
func ensureFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating database directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening database %s: %w", path, err)
	}
	return f.Close()
}

func (d *DB) exec(ctx context.Context, q string) error {
	_, err := d.ExecContext(ctx, q)
	return err
}

// Path returns the database file's path.
func (d *DB) Path() string { return d.path }

// Migrate brings component's tables up to date by running, in one
// transaction each, the steps it has not run yet. Steps are append-only: a
// released step is never edited, a change is a new step. A database that is
// newer than the code (more steps recorded than given) is refused rather than
// used with a schema the code does not know.
func (d *DB) Migrate(ctx context.Context, component string, steps []string) error {
	var have int
	err := d.QueryRowContext(ctx, `SELECT version FROM schema_migrations WHERE component = ?`, component).Scan(&have)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("reading %s schema version: %w", component, err)
	}
	if have > len(steps) {
		return fmt.Errorf("database schema for %s is at version %d, newer than this Warden (%d): upgrade Warden", component, have, len(steps))
	}
	for v := have; v < len(steps); v++ {
		err := d.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, steps[v]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(component, version) VALUES(?, ?)
				ON CONFLICT(component) DO UPDATE SET version = excluded.version`, component, v+1)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrating %s schema to version %d: %w", component, v+1, err)
		}
	}
	return nil
}

// ExecContext runs a statement outside a transaction, after this process's
// other writes (see DB.write).
func (d *DB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	d.write.Lock()
	defer d.write.Unlock()
	return d.DB.ExecContext(ctx, query, args...)
}

// InTx runs fn in a write transaction, committing if it returns nil and
// rolling back otherwise. Transactions of this process run one at a time;
// fn must use tx, never d, or it waits for itself.
func (d *DB) InTx(ctx context.Context, fn func(*sql.Tx) error) error {
	d.write.Lock()
	defer d.write.Unlock()
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing transaction: %w", err)
	}
	return nil
}
