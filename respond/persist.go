package respond

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/warden-run/warden/store"
)

// respond owns one table: the detection windows, one row per rule and
// group, so that a restart in the middle of a window loses nothing but
// the last FlushInterval.
var migrations = []string{
	`CREATE TABLE respond_windows (
		rule       TEXT NOT NULL,
		key        TEXT NOT NULL,
		rule_hash  TEXT NOT NULL,
		state      BLOB NOT NULL,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (rule, key)
	)`,
}

func migrate(ctx context.Context, db *store.DB) error {
	return db.Migrate(ctx, "respond", migrations)
}

// load restores persisted windows: those of rules that no longer exist or
// changed since (their hash differs) are dropped, as are rows that do not
// parse or exceed the engine's bounds.
func (e *Engine) load(ctx context.Context) error {
	rows, err := e.o.DB.QueryContext(ctx, `SELECT rule, key, rule_hash, state FROM respond_windows ORDER BY updated_at DESC`)
	if err != nil {
		return fmt.Errorf("loading detection windows: %w", err)
	}
	defer rows.Close()
	var stale []winKey
	loaded := 0
	for rows.Next() {
		var rule, key, hash string
		var state []byte
		if err := rows.Scan(&rule, &key, &hash, &state); err != nil {
			return fmt.Errorf("loading detection windows: %w", err)
		}
		st := e.ev.states[rule]
		if st == nil || st.rule.hash != hash || len(st.groups) >= st.maxGroups {
			stale = append(stale, winKey{rule, key})
			continue
		}
		g, err := unmarshalGroup(st.rule, key, state)
		if err != nil {
			e.log.Warn("dropping a stored detection window that does not load", "rule", rule, "err", err)
			stale = append(stale, winKey{rule, key})
			continue
		}
		st.groups[key] = g
		loaded++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("loading detection windows: %w", err)
	}
	rows.Close()
	if len(stale) > 0 {
		batch := map[winKey][]byte{}
		for _, k := range stale {
			batch[k] = nil
		}
		if err := e.write(ctx, batch); err != nil {
			return err
		}
	}
	e.log.Info("detection windows loaded", "groups", loaded, "dropped", len(stale))
	return nil
}

// flush hands the changed windows to the persister; final writes them
// synchronously (Close). Called by the worker only.
func (e *Engine) flush(final bool) {
	now := e.o.Now()
	if now.Sub(e.lastSwp) > 5*time.Second || final {
		e.sweep(now.UnixMilli())
		e.lastSwp = now
		e.fence.Range(func(k, v any) bool {
			if time.Now().After(v.(fenceEntry).until) {
				e.fence.CompareAndDelete(k, v)
			}
			return true
		})
	}
	e.snapshotStats()
	if e.o.DB == nil {
		for _, st := range e.ev.states {
			for k := range st.dirty {
				if g := st.groups[k]; g != nil {
					g.dirty = false
				}
			}
			clear(st.dirty)
		}
		return
	}
	e.pmu.Lock()
	for _, st := range e.ev.states {
		for k := range st.dirty {
			var b []byte
			if g := st.groups[k]; g != nil {
				g.dirty = false
				var err error
				if b, err = g.marshal(); err != nil {
					e.log.Error("could not serialise a detection window", "rule", st.rule.ID, "err", err)
					continue
				}
			}
			e.pend[winKey{st.rule.ID, k}] = b
		}
		clear(st.dirty)
	}
	n := len(e.pend)
	e.pmu.Unlock()
	if final {
		e.persistOnce(context.Background())
		return
	}
	if n > 0 {
		select {
		case e.persistQ <- struct{}{}:
		default:
		}
	}
}

// sweep forgets groups whose window and suppression have passed (by the
// wall clock), so that memory and the table only hold live windows.
func (e *Engine) sweep(now int64) {
	for _, st := range e.ev.states {
		horizon := st.rule.span.Milliseconds()
		for k, g := range st.groups {
			if g.expired(now, horizon) && (st.rule.Kind != KindNewValue || g.last < now-horizon) {
				delete(st.groups, k)
				st.dirty[k] = true
			}
		}
	}
}

func (e *Engine) persistLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.persistQ:
			e.persistOnce(ctx)
		}
	}
}

// persistOnce writes what is pending; on failure it puts back what was not
// superseded meanwhile, to try again at the next flush.
func (e *Engine) persistOnce(ctx context.Context) {
	e.pmu.Lock()
	batch := e.pend
	e.pend = map[winKey][]byte{}
	e.pmu.Unlock()
	if len(batch) == 0 {
		return
	}
	if err := e.write(context.WithoutCancel(ctx), batch); err != nil {
		e.log.Error("could not persist detection windows; retrying at the next flush", "windows", len(batch), "err", err)
		e.pmu.Lock()
		for k, v := range batch {
			if _, newer := e.pend[k]; !newer {
				e.pend[k] = v
			}
		}
		e.pmu.Unlock()
	}
}

func (e *Engine) write(ctx context.Context, batch map[winKey][]byte) error {
	now := time.Now().UnixMilli()
	return e.o.DB.InTx(ctx, func(tx *sql.Tx) error {
		for k, v := range batch {
			if v == nil {
				if _, err := tx.ExecContext(ctx, `DELETE FROM respond_windows WHERE rule = ? AND key = ?`, k.rule, k.key); err != nil {
					return fmt.Errorf("deleting a detection window: %w", err)
				}
				continue
			}
			hash := ""
			if st := e.ev.states[k.rule]; st != nil {
				hash = st.rule.hash
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO respond_windows(rule, key, rule_hash, state, updated_at) VALUES(?, ?, ?, ?, ?)
				ON CONFLICT(rule, key) DO UPDATE SET rule_hash = excluded.rule_hash, state = excluded.state, updated_at = excluded.updated_at`,
				k.rule, k.key, hash, v, now); err != nil {
				return fmt.Errorf("writing a detection window: %w", err)
			}
		}
		return nil
	})
}
