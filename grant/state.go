package grant

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warden-run/warden/store"
)

// Task statuses.
const (
	StatusOpen      = "open"
	StatusCompleted = "completed"
	StatusRevoked   = "revoked"
)

var migrations = []string{
	`CREATE TABLE tasks (
		id            TEXT PRIMARY KEY,
		agent         TEXT NOT NULL,
		intent        TEXT NOT NULL,
		requester     TEXT NOT NULL,
		parent        TEXT REFERENCES tasks(id),
		path          TEXT NOT NULL,
		jti           TEXT NOT NULL UNIQUE,
		status        TEXT NOT NULL,
		status_reason TEXT NOT NULL DEFAULT '',
		scope         TEXT NOT NULL,
		budget        INTEGER NOT NULL,
		depth         INTEGER NOT NULL,
		created_at    INTEGER NOT NULL,
		expires_at    INTEGER NOT NULL,
		ended_at      INTEGER
	);
	CREATE INDEX tasks_by_agent ON tasks(agent, status);
	CREATE INDEX tasks_by_path ON tasks(path);
	CREATE INDEX tasks_by_expiry ON tasks(expires_at);
	CREATE TABLE budgets (
		jti      TEXT NOT NULL,
		slot     INTEGER NOT NULL,
		lim      INTEGER NOT NULL,
		reserved INTEGER NOT NULL,
		PRIMARY KEY (jti, slot)
	);`,
	`ALTER TABLE tasks ADD COLUMN egress TEXT NOT NULL DEFAULT 'null';`,
}

// taskStatus is what the decision path needs to know of a task.
type taskStatus struct {
	status  string
	reason  string
	expires time.Time
}

// state holds the revocation snapshot and the budget counters. The decision
// path reads the snapshot through one atomic load and cannot skip it: a
// cached, verified grant is still checked against it on every call.
type state struct {
	db  *store.DB
	now func() time.Time

	snap atomic.Pointer[map[string]taskStatus] // every task not yet expired

	mu       sync.Mutex // serialises snapshot rebuilds and counter creation
	counters map[budgetKey]*counter
}

type budgetKey struct {
	jti  string
	slot int // -1: the grant as a whole; i: scope entry i
}

// counter is a persisted call budget handed out in leases: the database
// records calls as used a lease at a time, before they are made, and the
// process counts within the lease in memory. A crash loses at most the rest
// of a lease (calls are never refilled); a restart never grants more than
// the limit.
type counter struct {
	mu       sync.Mutex
	limit    int64
	reserved int64 // persisted
	used     int64
}

func newState(ctx context.Context, db *store.DB, now func() time.Time) (*state, error) {
	if err := db.Migrate(ctx, "grant", migrations); err != nil {
		return nil, err
	}
	return &state{db: db, now: now, counters: make(map[budgetKey]*counter)}, nil
}

// load reads every unexpired task into the snapshot.
func (s *state) load(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows, err := s.db.QueryContext(ctx, `SELECT id, status, status_reason, expires_at FROM tasks WHERE expires_at > ?`, s.now().UnixNano())
	if err != nil {
		return fmt.Errorf("loading tasks: %w", err)
	}
	defer rows.Close()
	m := make(map[string]taskStatus)
	for rows.Next() {
		var id string
		var ts taskStatus
		var exp int64
		if err := rows.Scan(&id, &ts.status, &ts.reason, &exp); err != nil {
			return fmt.Errorf("loading tasks: %w", err)
		}
		ts.expires = time.Unix(0, exp)
		m[id] = ts
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("loading tasks: %w", err)
	}
	s.snap.Store(&m)
	return nil
}

// update applies status changes to the snapshot after they are committed,
// dropping expired entries as it copies.
func (s *state) update(changes map[string]taskStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.snap.Load()
	if old == nil {
		return // not loaded: load will read the committed state
	}
	now := s.now()
	m := make(map[string]taskStatus, len(*old)+len(changes))
	for k, v := range *old {
		if now.Before(v.expires) {
			m[k] = v
		}
	}
	for k, v := range changes {
		m[k] = v
	}
	s.snap.Store(&m)
}

// checkTasks checks a task chain (own first, then ancestors) against the
// revocation snapshot, from the root down, so that a task revoked because an
// ancestor was is reported as such.
func (s *state) checkTasks(chain []string) error {
	m := s.snap.Load()
	if m == nil {
		return errorf(CodeStateUnavailable, "revocation state is not loaded yet: refusing rather than guessing")
	}
	for i := len(chain) - 1; i >= 0; i-- {
		id := chain[i]
		ts, ok := (*m)[id]
		switch {
		case !ok && i == 0:
			return errorf(CodeTaskUnknown, "task %s is not known to this control plane", id)
		case !ok:
			return errorf(CodeAncestorRevoked, "task %s was delegated from task %s, which is not known", chain[0], id)
		case ts.status == StatusOpen:
		case i > 0:
			return errorf(CodeAncestorRevoked, "task %s was delegated from task %s, which is %s (%s)", chain[0], id, ts.status, ts.reason)
		case ts.status == StatusCompleted:
			return errorf(CodeTaskCompleted, "task %s was completed: its grant no longer allows anything", id)
		default:
			return errorf(CodeRevoked, "task %s was revoked (%s)", id, ts.reason)
		}
	}
	return nil
}

// reserve takes one call from each slot, all or nothing: when one slot is
// spent, the calls already taken from the others are given back.
func (s *state) reserve(ctx context.Context, keys []budgetKey) error {
	taken := make([]*counter, 0, len(keys))
	for _, k := range keys {
		c, err := s.counter(ctx, k)
		if err == nil {
			err = c.take(ctx, s.db, k)
		}
		if err != nil {
			for _, t := range taken {
				t.mu.Lock()
				t.used--
				t.mu.Unlock()
			}
			return err
		}
		taken = append(taken, c)
	}
	return nil
}

func (s *state) counter(ctx context.Context, k budgetKey) (*counter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.counters[k]; ok {
		return c, nil
	}
	c := &counter{}
	err := s.db.QueryRowContext(ctx, `SELECT lim, reserved FROM budgets WHERE jti = ? AND slot = ?`, k.jti, k.slot).Scan(&c.limit, &c.reserved)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errorf(CodeTaskUnknown, "no budget is recorded for grant %s", k.jti)
	}
	if err != nil {
		return nil, wrapErr(CodeStateUnavailable, err, "reading the call budget")
	}
	c.used = c.reserved // calls leased before a restart count as used
	s.counters[k] = c
	return c, nil
}

// take reserves one call, persisting a new lease first when the current one
// is spent.
func (c *counter) take(ctx context.Context, db *store.DB, k budgetKey) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.used < c.reserved {
		c.used++
		return nil
	}
	if c.reserved >= c.limit {
		if k.slot >= 0 {
			return errorf(CodeToolBudget, "the per-tool budget of this grant entry (%d calls) is spent", c.limit)
		}
		return errorf(CodeBudgetExhausted, "the call budget of grant %s (%d calls) is spent", k.jti, c.limit)
	}
	next := min(c.limit, c.reserved+lease(c.limit))
	res, err := db.ExecContext(ctx, `UPDATE budgets SET reserved = ? WHERE jti = ? AND slot = ? AND reserved = ?`, next, k.jti, k.slot, c.reserved)
	if err != nil {
		return wrapErr(CodeStateUnavailable, err, "recording the call budget")
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errorf(CodeStateUnavailable, "the call budget of grant %s changed under this process; refusing rather than overspending", k.jti)
	}
	c.reserved = next
	c.used++
	return nil
}

// lease is how many calls are recorded as used per database write: a tenth
// of the budget, between 1 and 1000.
func lease(limit int64) int64 { return max(1, min(limit/10, 1000)) }
