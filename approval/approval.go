// Package approval owns human approval of single tool calls: the record of
// calls held for a human, the bounded wait of a held call, the decision
// (only an /admin/ identity may decide), and the requirement, set by a
// detection playbook, that an agent's sensitive calls be approved.
//
// An approval is bound to the exact call it was requested for (a hash of
// the tool id and the canonical JSON of its arguments, for that agent and
// task) and is used at most once: it releases one call, the one waiting or
// an identical retry, and nothing else. approval never decides whether a
// call needs a human (the gateway's stages and the flow rules do) and never
// forwards anything; every failure to read or write its record denies.
package approval

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/store"
)

// Status of an approval.
type Status string

// Statuses.
const (
	Pending  Status = "pending"
	Approved Status = "approved" // decided, not yet used
	Used     Status = "used"     // released the call it was for
	Denied   Status = "denied"
	Expired  Status = "expired" // nobody decided in time, or approved and never used
)

// Codes a held call is refused with (the gateway returns them to the
// agent) and errors of Decide carry.
const (
	CodeDenied      = "approval_denied"      // a human refused the call
	CodeTimeout     = "approval_pending"     // nobody decided within the wait; the request stays open until it expires
	CodeExpired     = "approval_expired"     // the request expired undecided
	CodeUnavailable = "approval_unavailable" // the record could not be read or written: fail closed
	CodeTooMany     = "approval_queue_full"  // the agent already has too many calls waiting for a human
	CodeUnknown     = "approval_unknown"
	CodeDecided     = "approval_already_decided"
	CodeForbidden   = "approval_forbidden" // the decider is not an operator
	CodeInvalid     = "invalid_input"
)

// Error is a refusal of Decide (or Get) with its code.
type Error struct {
	Code string
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Approval is one held call.
type Approval struct {
	ID    string `json:"id"`
	Agent string `json:"agent"`
	Task  string `json:"task,omitempty"`
	Tool  string `json:"tool"`
	// CallHash binds the approval to the exact call: sha256 over the tool
	// id and the canonical JSON of the arguments.
	CallHash string `json:"call_hash"`
	// Arguments are the call's arguments as the approver sees them
	// (truncated past 8 KiB; the hash covers all of them).
	Arguments string     `json:"arguments"`
	Rule      string     `json:"rule,omitempty"`   // what asked for a human: a detection rule, taint_sound, tier_high_risk
	Reason    string     `json:"reason,omitempty"` // why, in words
	Status    Status     `json:"status"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	DecidedBy string     `json:"decided_by,omitempty"`
	DecidedAt *time.Time `json:"decided_at,omitempty"`
	Note      string     `json:"note,omitempty"`
	UsedAt    *time.Time `json:"used_at,omitempty"`
}

// Request is a call that needs a human.
type Request struct {
	Agent   string // SPIFFE ID
	Task    string
	Tool    string
	Args    json.RawMessage
	Session string
	Rule    string
	Reason  string
}

// Outcome is what became of a held call.
type Outcome struct {
	Allow   bool
	Code    string // "" when allowed
	ID      string // the approval
	Message string
}

// Requirement is a detection playbook's demand that an agent's sensitive
// calls be approved, until a time.
type Requirement struct {
	Agent     string    `json:"agent"`
	Rule      string    `json:"rule"`
	Reason    string    `json:"reason"`
	Until     time.Time `json:"until"`
	CreatedAt time.Time `json:"created_at"`
}

// Options configure the service.
type Options struct {
	DB     *store.DB
	Events events.Sink
	Log    *slog.Logger
	Now    func() time.Time
	// Wait bounds how long a held call waits for a decision (default 30s,
	// at most 5 minutes).
	Wait time.Duration
	// TTL is how long a request stays open for a decision, and an approved
	// one for its (single) use (default 15 minutes).
	TTL time.Duration
	// MaxPending bounds the requests one agent may have open (default 20).
	MaxPending int
	// OnRequest is told of each new request (to notify a human); it must
	// not block.
	OnRequest func(Approval)
}

// Service holds calls for approval.
type Service struct {
	o       Options
	mu      sync.Mutex
	waiters map[string][]chan struct{}
	reqs    atomic.Pointer[map[string]Requirement]
}

const maxShownArgs = 8 << 10

var migrations = []string{
	`CREATE TABLE approvals (
		id         TEXT PRIMARY KEY,
		agent      TEXT NOT NULL,
		task       TEXT NOT NULL,
		tool       TEXT NOT NULL,
		call_hash  TEXT NOT NULL,
		arguments  TEXT NOT NULL,
		rule       TEXT NOT NULL,
		reason     TEXT NOT NULL,
		status     TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		expires_at INTEGER NOT NULL,
		decided_by TEXT NOT NULL DEFAULT '',
		decided_at INTEGER NOT NULL DEFAULT 0,
		note       TEXT NOT NULL DEFAULT '',
		used_at    INTEGER NOT NULL DEFAULT 0
	)`,
	`CREATE INDEX approvals_call ON approvals(agent, task, call_hash, status)`,
	`CREATE TABLE approval_requirements (
		agent      TEXT PRIMARY KEY,
		rule       TEXT NOT NULL,
		reason     TEXT NOT NULL,
		until      INTEGER NOT NULL,
		created_at INTEGER NOT NULL
	)`,
}

// Open migrates the service's tables and loads the standing requirements.
func Open(ctx context.Context, o Options) (*Service, error) {
	if o.DB == nil || o.Events == nil {
		return nil, errors.New("approval: needs a database and an event sink")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Wait <= 0 {
		o.Wait = 30 * time.Second
	}
	o.Wait = min(o.Wait, 5*time.Minute)
	if o.TTL <= 0 {
		o.TTL = 15 * time.Minute
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 20
	}
	if err := o.DB.Migrate(ctx, "approval", migrations); err != nil {
		return nil, err
	}
	s := &Service{o: o, waiters: map[string][]chan struct{}{}}
	if err := s.loadRequirements(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Wait is how long a held call waits.
func (s *Service) Wait() time.Duration { return s.o.Wait }

// CallHash is the hash an approval is bound to: the tool id and the
// canonical JSON of the arguments (keys sorted, numbers as written), so
// that reordering keys does not make a different call and any change of
// value does.
func CallHash(tool string, args json.RawMessage) string {
	canon := canonical(args)
	h := sha256.New()
	h.Write([]byte(tool))
	h.Write([]byte{0})
	h.Write(canon)
	return hex.EncodeToString(h.Sum(nil))
}

func canonical(args json.RawMessage) []byte {
	if len(bytes.TrimSpace(args)) == 0 {
		return []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		// not JSON: bind to the bytes themselves
		return append([]byte("raw:"), args...)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return append([]byte("raw:"), args...)
	}
	return b
}

// Hold waits (at most Wait, or until ctx ends) for a human to decide on the
// call. An approved, unused approval of the identical call (same agent,
// task, tool and arguments) releases it at once and is used up; an open
// request for the identical call is waited on rather than duplicated.
// Anything else denies: a refusal, no decision in time, a record that
// cannot be written.
func (s *Service) Hold(ctx context.Context, r Request) Outcome {
	hash := CallHash(r.Tool, r.Args)
	deadline := time.NewTimer(s.o.Wait)
	defer deadline.Stop()
	for {
		a, fresh, err := s.claimOrOpen(ctx, r, hash)
		if err != nil {
			var ae *Error
			if errors.As(err, &ae) {
				return Outcome{Code: ae.Code, Message: ae.Msg}
			}
			s.o.Log.Error("approval record unavailable; denying the held call", "agent", r.Agent, "tool", r.Tool, "err", err)
			return Outcome{Code: CodeUnavailable, Message: "the call needs human approval, and the approval record is unavailable: " + err.Error()}
		}
		if a.Status == Used {
			return Outcome{Allow: true, ID: a.ID, Message: "approved by " + a.DecidedBy}
		}
		if fresh && s.o.OnRequest != nil {
			s.o.OnRequest(*a)
		}
		ch := s.watch(a.ID)
		// a decision may have landed between the read and the watch
		if cur, err := s.Get(ctx, a.ID); err == nil && cur.Status != Pending {
			s.unwatch(a.ID, ch)
			if out, again := s.settle(ctx, cur); !again {
				return out
			}
			continue
		}
		select {
		case <-ch:
		case <-deadline.C:
			s.unwatch(a.ID, ch)
			return Outcome{Code: CodeTimeout, ID: a.ID, Message: fmt.Sprintf(
				"this call needs human approval (%s) and none came within %v: approval %s stays open until %s; once approved, repeat exactly the same call",
				r.Reason, s.o.Wait, a.ID, a.ExpiresAt.UTC().Format(time.RFC3339))}
		case <-ctx.Done():
			s.unwatch(a.ID, ch)
			return Outcome{Code: CodeTimeout, ID: a.ID, Message: "the call was cancelled while it waited for approval " + a.ID}
		}
		cur, err := s.Get(ctx, a.ID)
		if err != nil {
			return Outcome{Code: CodeUnavailable, ID: a.ID, Message: "reading approval " + a.ID + ": " + err.Error()}
		}
		if out, again := s.settle(ctx, cur); !again {
			return out
		}
	}
}

// settle turns a decided approval into the held call's outcome; again says
// the approval was used by an identical call first (the caller asks anew).
func (s *Service) settle(ctx context.Context, a *Approval) (Outcome, bool) {
	switch a.Status {
	case Approved:
		ok, err := s.use(ctx, a)
		if err != nil {
			return Outcome{Code: CodeUnavailable, ID: a.ID, Message: "using approval " + a.ID + ": " + err.Error()}, false
		}
		if !ok {
			return Outcome{}, true
		}
		return Outcome{Allow: true, ID: a.ID, Message: "approved by " + a.DecidedBy}, false
	case Denied:
		msg := "a human refused this call (approval " + a.ID + ", " + a.DecidedBy + ")"
		if a.Note != "" {
			msg += ": " + a.Note
		}
		return Outcome{Code: CodeDenied, ID: a.ID, Message: msg}, false
	case Used:
		return Outcome{}, true
	default:
		return Outcome{Code: CodeExpired, ID: a.ID, Message: "approval " + a.ID + " expired undecided"}, false
	}
}

// claimOrOpen uses an approved approval of the identical call, or finds
// the identical call's open request, or opens one.
func (s *Service) claimOrOpen(ctx context.Context, r Request, hash string) (*Approval, bool, error) {
	now := s.o.Now()
	var out *Approval
	fresh := false
	err := s.o.DB.InTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+cols+` FROM approvals WHERE agent = ? AND task = ? AND call_hash = ? AND status IN (?, ?) AND expires_at > ? ORDER BY created_at`,
			r.Agent, r.Task, hash, Approved, Pending, now.UnixNano())
		if err != nil {
			return err
		}
		var found []*Approval
		for rows.Next() {
			a, err := scan(rows)
			if err != nil {
				rows.Close()
				return err
			}
			found = append(found, a)
		}
		rows.Close()
		for _, a := range found {
			if a.Status == Approved {
				res, err := tx.ExecContext(ctx, `UPDATE approvals SET status = ?, used_at = ? WHERE id = ? AND status = ?`, Used, now.UnixNano(), a.ID, Approved)
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n == 1 {
					a.Status, a.UsedAt = Used, &now
					out = a
					return s.emit(ctx, a, "approval_used", "an approved call was released", a.DecidedBy)
				}
			}
		}
		for _, a := range found {
			if a.Status == Pending {
				out = a
				return nil
			}
		}
		var open int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM approvals WHERE agent = ? AND status = ? AND expires_at > ?`, r.Agent, Pending, now.UnixNano()).Scan(&open); err != nil {
			return err
		}
		if open >= s.o.MaxPending {
			return &Error{Code: CodeTooMany, Msg: fmt.Sprintf("%d calls of this agent already wait for a human; this one is refused", open)}
		}
		shown := string(r.Args)
		if len(shown) > maxShownArgs {
			shown = shown[:maxShownArgs] + "…"
		}
		a := &Approval{ID: "ap_" + events.NewID()[:20], Agent: r.Agent, Task: r.Task, Tool: r.Tool, CallHash: hash, Arguments: shown,
			Rule: r.Rule, Reason: r.Reason, Status: Pending, CreatedAt: now, ExpiresAt: now.Add(s.o.TTL)}
		if _, err := tx.ExecContext(ctx, `INSERT INTO approvals(id, agent, task, tool, call_hash, arguments, rule, reason, status, created_at, expires_at)
			VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, a.ID, a.Agent, a.Task, a.Tool, a.CallHash, a.Arguments, a.Rule, a.Reason, a.Status,
			a.CreatedAt.UnixNano(), a.ExpiresAt.UnixNano()); err != nil {
			return err
		}
		out, fresh = a, true
		return s.emit(ctx, a, "approval_requested", "a call is held for human approval: "+r.Reason, r.Agent)
	})
	if err != nil {
		return nil, false, err
	}
	return out, fresh, nil
}

// use marks an approved approval used; false when another call used it.
func (s *Service) use(ctx context.Context, a *Approval) (bool, error) {
	ok := false
	err := s.o.DB.InTx(ctx, func(tx *sql.Tx) error {
		now := s.o.Now()
		res, err := tx.ExecContext(ctx, `UPDATE approvals SET status = ?, used_at = ? WHERE id = ? AND status = ? AND expires_at > ?`,
			Used, now.UnixNano(), a.ID, Approved, now.UnixNano())
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		if ok = n == 1; !ok {
			return nil
		}
		return s.emit(ctx, a, "approval_used", "an approved call was released", a.DecidedBy)
	})
	return ok, err
}

// Decide approves or denies a pending request. Only an operator
// (spiffe://<td>/admin/<name>) may decide; a request is decided once.
func (s *Service) Decide(ctx context.Context, id, decider string, approve bool, note string) (*Approval, error) {
	sid, err := spiffeid.FromString(decider)
	if err != nil {
		return nil, &Error{Code: CodeForbidden, Msg: "the decider is not a SPIFFE ID"}
	}
	if role, _, err := identity.RoleOf(sid); err != nil || role != identity.RoleAdmin {
		return nil, &Error{Code: CodeForbidden, Msg: decider + " may not decide approvals: only an operator (/admin/) identity may"}
	}
	if len(note) > 1024 {
		return nil, &Error{Code: CodeInvalid, Msg: "note: at most 1024 bytes"}
	}
	to, reason := Denied, "approval_denied"
	if approve {
		to, reason = Approved, "approval_granted"
	}
	var out *Approval
	err = s.o.DB.InTx(ctx, func(tx *sql.Tx) error {
		a, err := s.get(ctx, tx, id)
		if err != nil {
			return err
		}
		now := s.o.Now()
		if a.Status != Pending && a.Status != Expired {
			return &Error{Code: CodeDecided, Msg: fmt.Sprintf("approval %s is already %s", id, a.Status)}
		}
		if a.Status == Expired || !now.Before(a.ExpiresAt) {
			return &Error{Code: CodeExpired, Msg: fmt.Sprintf("approval %s expired at %s", id, a.ExpiresAt.UTC().Format(time.RFC3339))}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE approvals SET status = ?, decided_by = ?, decided_at = ?, note = ? WHERE id = ? AND status = ?`,
			to, decider, now.UnixNano(), note, id, Pending); err != nil {
			return err
		}
		a.Status, a.DecidedBy, a.DecidedAt, a.Note = to, decider, &now, note
		if approve {
			// an approval is for one use, soon
			a.ExpiresAt = now.Add(s.o.TTL)
			if _, err := tx.ExecContext(ctx, `UPDATE approvals SET expires_at = ? WHERE id = ?`, a.ExpiresAt.UnixNano(), id); err != nil {
				return err
			}
		}
		out = a
		return s.emit(ctx, a, reason, fmt.Sprintf("%s %s the held call (%s)", decider, to, note), decider)
	})
	if err != nil {
		return nil, err
	}
	s.wake(id)
	return out, nil
}

const cols = `id, agent, task, tool, call_hash, arguments, rule, reason, status, created_at, expires_at, decided_by, decided_at, note, used_at`

func scan(row interface{ Scan(...any) error }) (*Approval, error) {
	var a Approval
	var created, expires, decided, used int64
	var status string
	if err := row.Scan(&a.ID, &a.Agent, &a.Task, &a.Tool, &a.CallHash, &a.Arguments, &a.Rule, &a.Reason, &status,
		&created, &expires, &a.DecidedBy, &decided, &a.Note, &used); err != nil {
		return nil, err
	}
	a.Status = Status(status)
	a.CreatedAt, a.ExpiresAt = time.Unix(0, created).UTC(), time.Unix(0, expires).UTC()
	if decided != 0 {
		t := time.Unix(0, decided).UTC()
		a.DecidedAt = &t
	}
	if used != 0 {
		t := time.Unix(0, used).UTC()
		a.UsedAt = &t
	}
	return &a, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func (s *Service) get(ctx context.Context, q querier, id string) (*Approval, error) {
	if id == "" || len(id) > 64 {
		return nil, &Error{Code: CodeUnknown, Msg: fmt.Sprintf("no approval %q", id)}
	}
	a, err := scan(q.QueryRowContext(ctx, `SELECT `+cols+` FROM approvals WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, &Error{Code: CodeUnknown, Msg: fmt.Sprintf("no approval %q", id)}
	}
	if err != nil {
		return nil, fmt.Errorf("reading approval %s: %w", id, err)
	}
	s.expire(a)
	return a, nil
}

// expire shows a pending or approved approval past its expiry as expired.
func (s *Service) expire(a *Approval) {
	if (a.Status == Pending || a.Status == Approved) && !s.o.Now().Before(a.ExpiresAt) {
		a.Status = Expired
	}
}

// Get returns an approval.
func (s *Service) Get(ctx context.Context, id string) (*Approval, error) {
	return s.get(ctx, s.o.DB, id)
}

// List returns approvals, newest first; status "" lists all, "pending" the
// open ones.
func (s *Service) List(ctx context.Context, status Status, limit int) ([]Approval, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	now := s.o.Now().UnixNano()
	q := `SELECT ` + cols + ` FROM approvals`
	var args []any
	switch status {
	case "":
	case Pending, Approved:
		q += ` WHERE status = ? AND expires_at > ?`
		args = append(args, status, now)
	case Expired:
		q += ` WHERE status IN (?, ?) AND expires_at <= ?`
		args = append(args, Pending, Approved, now)
	case Used, Denied:
		q += ` WHERE status = ?`
		args = append(args, status)
	default:
		return nil, &Error{Code: CodeInvalid, Msg: fmt.Sprintf("status %q: want pending, approved, used, denied or expired", status)}
	}
	q += ` ORDER BY created_at DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.o.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing approvals: %w", err)
	}
	defer rows.Close()
	out := []Approval{}
	for rows.Next() {
		a, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("listing approvals: %w", err)
		}
		s.expire(a)
		out = append(out, *a)
	}
	return out, rows.Err()
}

func (s *Service) watch(id string) chan struct{} {
	ch := make(chan struct{})
	s.mu.Lock()
	s.waiters[id] = append(s.waiters[id], ch)
	s.mu.Unlock()
	return ch
}

func (s *Service) unwatch(id string, ch chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.waiters[id]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(s.waiters, id)
	} else {
		s.waiters[id] = ws
	}
}

func (s *Service) wake(id string) {
	s.mu.Lock()
	ws := s.waiters[id]
	delete(s.waiters, id)
	s.mu.Unlock()
	for _, ch := range ws {
		close(ch)
	}
}

// RequireApproval makes the agent's sensitive calls need a human until
// the given time (a later requirement extends an earlier one). It is the
// require_approval action of detection playbooks.
func (s *Service) RequireApproval(ctx context.Context, agent, rule, reason string, until time.Time) error {
	if agent == "" {
		return errors.New("require approval: no agent")
	}
	now := s.o.Now()
	err := s.o.DB.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO approval_requirements(agent, rule, reason, until, created_at) VALUES(?, ?, ?, ?, ?)
			ON CONFLICT(agent) DO UPDATE SET rule = excluded.rule, reason = excluded.reason, until = max(until, excluded.until), created_at = excluded.created_at`,
			agent, rule, reason, until.UnixNano(), now.UnixNano()); err != nil {
			return fmt.Errorf("recording the approval requirement: %w", err)
		}
		e := events.New(events.ClassAPIActivity, events.ActivityUpdate, "approval")
		e.StatusID = events.StatusSuccess
		e.Message = fmt.Sprintf("the sensitive calls of %s need human approval until %s (%s)", agent, until.UTC().Format(time.RFC3339), reason)
		e.Warden = &events.Warden{Agent: agent, Reason: "approval_required", Attrs: map[string]string{"rule": rule, "until": until.UTC().Format(time.RFC3339)}}
		return s.o.Events.Emit(ctx, e)
	})
	if err != nil {
		return err
	}
	return s.loadRequirements(ctx)
}

// ClearRequirement lifts an agent's approval requirement.
func (s *Service) ClearRequirement(ctx context.Context, agent, by string) error {
	err := s.o.DB.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM approval_requirements WHERE agent = ?`, agent); err != nil {
			return err
		}
		e := events.New(events.ClassAPIActivity, events.ActivityDelete, "approval")
		e.StatusID = events.StatusSuccess
		e.Actor = &events.Actor{User: &events.User{UID: by}}
		e.Message = "approval requirement lifted for " + agent
		e.Warden = &events.Warden{Agent: agent, Reason: "approval_requirement_lifted"}
		return s.o.Events.Emit(ctx, e)
	})
	if err != nil {
		return err
	}
	return s.loadRequirements(ctx)
}

// Required returns the agent's standing approval requirement, if one is in
// force. It reads an in-memory snapshot (the gateway asks on every call).
func (s *Service) Required(agent string) (Requirement, bool) {
	m := s.reqs.Load()
	if m == nil {
		return Requirement{}, false
	}
	r, ok := (*m)[agent]
	if !ok || !s.o.Now().Before(r.Until) {
		return Requirement{}, false
	}
	return r, true
}

// Requirements lists the requirements in force.
func (s *Service) Requirements() []Requirement {
	m := s.reqs.Load()
	var out []Requirement
	if m != nil {
		for _, r := range *m {
			if s.o.Now().Before(r.Until) {
				out = append(out, r)
			}
		}
	}
	return out
}

func (s *Service) loadRequirements(ctx context.Context) error {
	rows, err := s.o.DB.QueryContext(ctx, `SELECT agent, rule, reason, until, created_at FROM approval_requirements WHERE until > ?`, s.o.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("loading approval requirements: %w", err)
	}
	defer rows.Close()
	m := map[string]Requirement{}
	for rows.Next() {
		var r Requirement
		var until, created int64
		if err := rows.Scan(&r.Agent, &r.Rule, &r.Reason, &until, &created); err != nil {
			return fmt.Errorf("loading approval requirements: %w", err)
		}
		r.Until, r.CreatedAt = time.Unix(0, until).UTC(), time.Unix(0, created).UTC()
		m[r.Agent] = r
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("loading approval requirements: %w", err)
	}
	s.reqs.Store(&m)
	return nil
}

// emit records an approval's change as an API Activity event.
func (s *Service) emit(ctx context.Context, a *Approval, reason, msg, actor string) error {
	e := events.New(events.ClassAPIActivity, events.ActivityUpdate, "approval")
	e.Metadata.CorrelationUID = a.Task
	e.Metadata.Profiles = []string{"security_control"}
	e.StatusID = events.StatusSuccess
	e.StatusCode = reason
	e.Message = msg
	typ := "agent"
	if strings.Contains(actor, "/admin/") {
		typ = "admin"
	}
	e.Actor = &events.Actor{User: &events.User{UID: actor, Type: typ}}
	e.Resources = []events.Resource{{UID: a.Tool, Type: "tool"}, {UID: a.ID, Type: "approval"}}
	switch reason {
	case "approval_denied":
		e.ActionID, e.DispositionID = events.ActionDenied, events.DispositionBlocked
	case "approval_requested":
		e.DispositionID = events.DispositionQuarantined
	default:
		e.ActionID, e.DispositionID = events.ActionAllowed, events.DispositionAllowed
	}
	e.Warden = &events.Warden{Agent: a.Agent, Task: a.Task, Tool: a.Tool, Reason: reason,
		Attrs: map[string]string{"approval": a.ID, "call_hash": a.CallHash, "rule": a.Rule}}
	if err := s.o.Events.Emit(ctx, e); err != nil {
		return fmt.Errorf("recording %s: %w", reason, err)
	}
	return nil
}
