package policy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warden-run/warden/store"
)

// Component is the name under which the policy store's schema migrations are
// recorded.
const Component = "policy"

// migrations are the policy store's tables, append-only.
func migrations() []string {
	return []string{
		`CREATE TABLE policy_versions (
			version    INTEGER PRIMARY KEY AUTOINCREMENT,
			name       TEXT    NOT NULL,
			source     TEXT    NOT NULL,
			sha256     TEXT    NOT NULL,
			policies   INTEGER NOT NULL,
			applied_at INTEGER NOT NULL, -- Unix milliseconds
			applied_by TEXT    NOT NULL,
			message    TEXT    NOT NULL DEFAULT ''
		)`,
		`CREATE TABLE policy_active (
			id      INTEGER PRIMARY KEY CHECK (id = 1),
			version INTEGER NOT NULL REFERENCES policy_versions(version)
		)`,
	}
}

// ErrNoVersion is returned when the store holds no such version, or no
// version is active yet.
var ErrNoVersion = errors.New("no such policy version")

// Version describes one stored policy set.
type Version struct {
	Version   int64     `json:"version"`
	Name      string    `json:"name"`   // the file it was applied from
	Digest    string    `json:"sha256"` // hex SHA-256 of its source
	Policies  int       `json:"policies"`
	AppliedAt time.Time `json:"applied_at"`
	AppliedBy string    `json:"applied_by"`
	Message   string    `json:"message,omitempty"`
	Active    bool      `json:"active"`
}

// Meta says who applies a policy set and why.
type Meta struct {
	By      string // the operator's identity
	Message string // a change note
}

// Store is the versioned policy store. Applying a policy file stores it as a
// new version and makes it active; the active version's engine is held as an
// atomically swapped snapshot, so a decision sees either the old set or the
// new one, never a mix. Until Load succeeds, or after it fails, every
// decision denies with CodeUnavailable.
type Store struct {
	db     *store.DB
	log    *slog.Logger
	mu     sync.Mutex // serialises Load, Apply and Activate in this process
	active atomic.Pointer[Engine]
}

// NewStore migrates the policy tables of db and returns the store. It does
// not load the active version: call Load.
func NewStore(ctx context.Context, db *store.DB, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := db.Migrate(ctx, Component, migrations()); err != nil {
		return nil, fmt.Errorf("policy store: %w", err)
	}
	s := &Store{db: db, log: log}
	s.active.Store(unavailableEngine(errors.New("the policy store has not been loaded")))
	return s, nil
}

// Engine returns the current snapshot. It is never nil; an engine whose Err
// is set denies everything.
func (s *Store) Engine() *Engine { return s.active.Load() }

// Decide decides req with the active policy set.
func (s *Store) Decide(ctx context.Context, req Request) Decision {
	return s.active.Load().Decide(ctx, req)
}

// Precheck answers req with the active policy set whatever the arguments
// (see Engine.Precheck).
func (s *Store) Precheck(ctx context.Context, req Request) Decision {
	return s.active.Load().Precheck(ctx, req)
}

// Load reads the active version from the database, compiles it and makes it
// the snapshot decisions use. With no version applied yet the policy set is
// empty, which denies everything (no permit). If reading or compiling fails
// the snapshot becomes unavailable and every decision denies until a Load or
// Apply succeeds.
func (s *Store) Load(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	eng, err := s.load(ctx)
	if err != nil {
		s.active.Store(unavailableEngine(err))
		s.log.Error("policy store failed to load: denying every decision", "err", err)
		return err
	}
	s.active.Store(eng)
	s.log.Info("policy loaded", "version", eng.version, "policies", eng.set.Len(), "sha256", eng.set.digest)
	return nil
}

func (s *Store) load(ctx context.Context) (*Engine, error) {
	var (
		version      int64
		name, source string
	)
	err := s.db.QueryRowContext(ctx, `SELECT v.version, v.name, v.source
		FROM policy_active a JOIN policy_versions v ON v.version = a.version
		WHERE a.id = 1`).Scan(&version, &name, &source)
	if errors.Is(err, sql.ErrNoRows) {
		set, err := Compile("(none)", nil)
		if err != nil {
			return nil, fmt.Errorf("loading the empty policy set: %w", err)
		}
		return NewEngine(set), nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading the active policy version: %w", err)
	}
	set, err := Compile(name, []byte(source))
	if err != nil {
		return nil, fmt.Errorf("compiling policy version %d (%s): %w", version, name, err)
	}
	eng := NewEngine(set)
	eng.version = version
	return eng, nil
}

// Apply compiles and validates src (a whole policy file, reported as name),
// stores it as a new version, makes it active and swaps it in. A file that
// does not compile is refused with a *CompileError and changes nothing.
func (s *Store) Apply(ctx context.Context, name string, src []byte, meta Meta) (Version, error) {
	set, err := Compile(name, src)
	if err != nil {
		return Version{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := Version{
		Name: name, Digest: set.digest, Policies: set.Len(),
		AppliedAt: time.Now().UTC().Truncate(time.Millisecond),
		AppliedBy: meta.By, Message: meta.Message, Active: true,
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO policy_versions
			(name, source, sha256, policies, applied_at, applied_by, message)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			v.Name, string(src), v.Digest, v.Policies, v.AppliedAt.UnixMilli(), v.AppliedBy, v.Message)
		if err != nil {
			return err
		}
		if v.Version, err = res.LastInsertId(); err != nil {
			return err
		}
		return activate(ctx, tx, v.Version)
	})
	if err != nil {
		return Version{}, fmt.Errorf("storing policy set %s: %w", name, err)
	}
	eng := NewEngine(set)
	eng.version = v.Version
	s.active.Store(eng)
	s.log.Info("policy applied", "version", v.Version, "name", name, "policies", v.Policies, "sha256", v.Digest, "by", meta.By)
	return v, nil
}

func activate(ctx context.Context, tx *sql.Tx, version int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO policy_active (id, version) VALUES (1, ?)
		ON CONFLICT(id) DO UPDATE SET version = excluded.version`, version)
	return err
}

// Activate makes a stored version active again (a rollback) and swaps it in.
func (s *Store) Activate(ctx context.Context, version int64) (Version, error) {
	src, v, err := s.Source(ctx, version)
	if err != nil {
		return Version{}, err
	}
	set, err := Compile(v.Name, src)
	if err != nil {
		return Version{}, fmt.Errorf("compiling policy version %d: %w", version, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.InTx(ctx, func(tx *sql.Tx) error { return activate(ctx, tx, version) }); err != nil {
		return Version{}, fmt.Errorf("activating policy version %d: %w", version, err)
	}
	eng := NewEngine(set)
	eng.version = version
	s.active.Store(eng)
	v.Active = true
	s.log.Info("policy version activated", "version", version, "sha256", v.Digest)
	return v, nil
}

const versionColumns = `v.version, v.name, v.sha256, v.policies, v.applied_at, v.applied_by, v.message,
	COALESCE(a.version = v.version, 0)`

type scanner interface{ Scan(...any) error }

func scanVersion(r scanner) (Version, error) {
	var (
		v  Version
		ms int64
	)
	if err := r.Scan(&v.Version, &v.Name, &v.Digest, &v.Policies, &ms, &v.AppliedBy, &v.Message, &v.Active); err != nil {
		return Version{}, err
	}
	v.AppliedAt = time.UnixMilli(ms).UTC()
	return v, nil
}

// List returns every stored version, newest first.
func (s *Store) List(ctx context.Context) ([]Version, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+versionColumns+`
		FROM policy_versions v LEFT JOIN policy_active a ON a.id = 1
		ORDER BY v.version DESC`)
	if err != nil {
		return nil, fmt.Errorf("listing policy versions: %w", err)
	}
	defer rows.Close()
	var out []Version
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, fmt.Errorf("listing policy versions: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing policy versions: %w", err)
	}
	return out, nil
}

// Active returns the active version, or ErrNoVersion if none was applied.
func (s *Store) Active(ctx context.Context) (Version, error) {
	v, err := scanVersion(s.db.QueryRowContext(ctx, `SELECT `+versionColumns+`
		FROM policy_active a JOIN policy_versions v ON v.version = a.version
		WHERE a.id = 1`))
	if errors.Is(err, sql.ErrNoRows) {
		return Version{}, ErrNoVersion
	}
	if err != nil {
		return Version{}, fmt.Errorf("reading the active policy version: %w", err)
	}
	return v, nil
}

// Source returns a stored version's source and description.
func (s *Store) Source(ctx context.Context, version int64) ([]byte, Version, error) {
	var src string
	row := s.db.QueryRowContext(ctx, `SELECT `+versionColumns+`, v.source
		FROM policy_versions v LEFT JOIN policy_active a ON a.id = 1
		WHERE v.version = ?`, version)
	var (
		v  Version
		ms int64
	)
	err := row.Scan(&v.Version, &v.Name, &v.Digest, &v.Policies, &ms, &v.AppliedBy, &v.Message, &v.Active, &src)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, Version{}, fmt.Errorf("policy version %d: %w", version, ErrNoVersion)
	}
	if err != nil {
		return nil, Version{}, fmt.Errorf("reading policy version %d: %w", version, err)
	}
	v.AppliedAt = time.UnixMilli(ms).UTC()
	return []byte(src), v, nil
}
