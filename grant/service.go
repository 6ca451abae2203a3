package grant

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/store"
	"github.com/warden-run/warden/tier"
)

// Settings are the grant service's defaults and limits.
type Settings struct {
	TrustDomain   spiffeid.TrustDomain
	Tier          tier.Tier     // the deployment's tier
	DefaultTTL    time.Duration // 15 minutes unless set
	DefaultBudget int           // 100 calls unless set
	DPoPWindow    time.Duration // how old a DPoP proof may be; 60 s unless set
}

// MaxBudget bounds a grant's call budget.
const MaxBudget = 1_000_000

// Policy is the organisation policy as the grant service consults it when
// minting and delegating (call-time decisions are the decision point's).
// A nil Policy means no mint-time checks; calls are still decided in full.
type Policy interface {
	// Precheck refuses (with CodePolicyForbids) a tool that policy forbids
	// for the agent within the task whatever the arguments.
	Precheck(ctx context.Context, agent *identity.Record, task TaskRef, tool string) error
	// MayDelegate refuses a delegation from one agent to another.
	MayDelegate(ctx context.Context, from, to *identity.Record, task TaskRef) error
}

// TaskRef is a task as policy sees it.
type TaskRef struct {
	ID        string
	Intent    string
	Requester string
	Ancestors []string // parent first
}

// Service mints, delegates, revokes and checks grants.
type Service struct {
	set    Settings
	db     *store.DB
	auth   *Authority
	ver    *Verifier
	dpop   *DPoPVerifier
	st     *state
	policy Policy
	sink   events.Sink
	log    *slog.Logger
	now    func() time.Time

	mu       sync.Mutex // serialises writes
	onRevoke []func(context.Context, Revocation)
}

// Revocation tells subscribers (the gateway) which tasks just lost their
// access, so they can cancel the calls in flight and close the streams.
type Revocation struct {
	Tasks  []string // every task revoked or completed, descendants included
	Agents []string // the agents holding those tasks
	Reason string
}

// NewService assembles the grant service. now may be nil.
func NewService(ctx context.Context, set Settings, db *store.DB, key ed25519.PrivateKey, pol Policy, sink events.Sink, log *slog.Logger, now func() time.Time) (*Service, error) {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if set.DefaultTTL == 0 {
		set.DefaultTTL = 15 * time.Minute
	}
	if set.DefaultBudget == 0 {
		set.DefaultBudget = 100
	}
	if set.DPoPWindow == 0 {
		set.DPoPWindow = time.Minute
	}
	auth, err := NewAuthority(key)
	if err != nil {
		return nil, err
	}
	st, err := newState(ctx, db, now)
	if err != nil {
		return nil, err
	}
	return &Service{
		set: set, db: db, auth: auth, st: st, policy: pol, sink: sink, log: log, now: now,
		ver:  NewVerifier(map[string]ed25519.PublicKey{auth.KeyID(): auth.Public()}, Audience(set.TrustDomain), now),
		dpop: NewDPoPVerifier(set.DPoPWindow, now),
	}, nil
}

// Audience is the audience of every grant of a trust domain: its gateways.
func Audience(td spiffeid.TrustDomain) string { return td.IDString() }

// Load reads persisted tasks into the revocation snapshot. Until it
// succeeds every check denies with CodeStateUnavailable.
func (s *Service) Load(ctx context.Context) error { return s.st.load(ctx) }

// Verifier returns the grant verifier (for enforcement points that check
// grants themselves).
func (s *Service) Verifier() *Verifier { return s.ver }

// OnRevoke registers fn to run after tasks are revoked or completed.
func (s *Service) OnRevoke(fn func(context.Context, Revocation)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onRevoke = append(s.onRevoke, fn)
}

// Task is a task as operators and agents see it.
type Task struct {
	ID           string     `json:"id"`
	Agent        string     `json:"agent"`
	Intent       string     `json:"intent"`
	Requester    string     `json:"requester"`
	Parent       string     `json:"parent,omitempty"`
	Status       string     `json:"status"`
	StatusReason string     `json:"status_reason,omitempty"`
	Scope        Scope      `json:"scope"`
	Egress       []string   `json:"egress,omitempty"`
	Budget       int        `json:"budget"`
	Used         int64      `json:"used"` // calls recorded as used (leased)
	Depth        int        `json:"delegation_depth"`
	GrantID      string     `json:"grant_id"`
	CreatedAt    time.Time  `json:"created_at"`
	ExpiresAt    time.Time  `json:"expires_at"`
	EndedAt      *time.Time `json:"ended_at,omitempty"`
}

// OpenRequest asks for a task and its grant.
type OpenRequest struct {
	Grantee    *identity.Record // the agent that will hold the grant
	Requester  string           // SPIFFE ID (or local command) that asked
	Intent     string
	Scope      Scope
	Egress     []string      // hosts the task's arguments may point at (see Claims.Egress)
	TTL        time.Duration // 0: the default (15 minutes)
	Budget     int           // 0: the default (100 calls)
	Delegation int           // how many times it may be delegated
}

// Open opens a task for an agent and mints its grant.
func (s *Service) Open(ctx context.Context, r OpenRequest) (*Task, string, error) {
	if err := s.checkGrantee(r.Grantee); err != nil {
		return nil, "", err
	}
	p := tier.For(tier.Stricter(s.set.Tier, r.Grantee.Tier))
	ttl, budget, err := s.limits(r.TTL, r.Budget, p, r.Intent, r.Delegation)
	if err != nil {
		return nil, "", err
	}
	if _, err := compileScope(r.Scope); err != nil {
		return nil, "", err
	}
	if err := checkEntryBudgets(r.Scope, budget); err != nil {
		return nil, "", err
	}
	if err := s.requireConstraints(p, r.Scope); err != nil {
		return nil, "", err
	}
	egress, err := normEgress(r.Egress)
	if err != nil {
		return nil, "", err
	}
	id := "t_" + randomHex(12)
	if err := s.precheck(ctx, r.Grantee, TaskRef{ID: id, Intent: r.Intent, Requester: r.Requester}, r.Scope); err != nil {
		return nil, "", err
	}
	now := s.now()
	c := &Claims{
		Claims: s.baseClaims(r.Grantee.ID.String(), now, now.Add(ttl)),
		Task:   id, Intent: r.Intent, Scope: r.Scope, Egress: egress, Budget: budget, Depth: r.Delegation,
		Cnf: Cnf{JKT: r.Grantee.KeyThumbprint},
	}
	return s.mint(ctx, c, now, r.Requester, "", "/"+id+"/", "opened")
}

// DelegateRequest asks to hand part of a task to another agent.
type DelegateRequest struct {
	Caller      *identity.Caller // the agent delegating; must hold the parent grant's key
	ParentToken string
	To          *identity.Record
	Intent      string
	Scope       Scope
	Egress      []string      // within the parent's; none inherits the parent's
	TTL         time.Duration // cut to the parent's remaining lifetime
	Budget      int           // at most what the parent has left
	Delegation  int           // cut to the parent's depth minus one
}

// Delegate mints a narrower grant for a sub-task, with token-exchange
// semantics: the child names its parent, records the actor chain, and
// carries every ancestor's scope so that all of them are checked on every
// call. Tools the parent does not hold are refused here.
func (s *Service) Delegate(ctx context.Context, r DelegateRequest) (t *Task, tok string, err error) {
	var parentTask string
	defer func() {
		if err != nil {
			s.recordRefusedDelegation(ctx, r, parentTask, err)
		}
	}()
	parent, err := s.ver.Verify(r.ParentToken)
	if err != nil {
		return nil, "", err
	}
	parentTask = parent.Task
	if parent.Subject != r.Caller.ID.String() {
		return nil, "", errorf(CodeWrongAgent, "the parent grant belongs to %s, not to the caller %s", parent.Subject, r.Caller.ID)
	}
	if parent.Cnf.JKT != r.Caller.KeyThumbprint {
		return nil, "", errorf(CodeBindingUnproven, "the caller does not hold the key the parent grant is bound to")
	}
	if err := s.st.checkTasks(parent.TaskChain()); err != nil {
		return nil, "", err
	}
	if parent.Depth < 1 {
		return nil, "", errorf(CodeDelegationDepth, "task %s may not be delegated further", parent.Task)
	}
	if err := s.checkGrantee(r.To); err != nil {
		return nil, "", err
	}
	for _, e := range r.Scope {
		if !entryCoveredBy(e, parent.Scope) {
			return nil, "", errorf(CodeDelegationWidening, "the delegation asks for %q, which the parent grant does not hold", e.Tool)
		}
	}
	egress, err := normEgress(r.Egress)
	if err != nil {
		return nil, "", err
	}
	if egress, err = narrowEgress(egress, parent.Egress); err != nil {
		return nil, "", err
	}
	now := s.now()
	p := tier.For(tier.Stricter(s.set.Tier, r.To.Tier))
	if r.Delegation > parent.Depth-1 {
		return nil, "", errorf(CodeDelegationWidening, "the delegation asks for depth %d; the parent allows %d more", r.Delegation, parent.Depth-1)
	}
	remaining, err := s.remaining(ctx, parent.ID)
	if err != nil {
		return nil, "", err
	}
	if r.Budget > int(remaining) {
		return nil, "", errorf(CodeDelegationWidening, "the delegation asks for %d calls; the parent has %d left", r.Budget, remaining)
	}
	if r.Budget == 0 {
		r.Budget = min(s.set.DefaultBudget, int(remaining))
		if r.Budget == 0 {
			return nil, "", errorf(CodeBudgetExhausted, "the parent grant has no calls left to delegate")
		}
	}
	ttl, budget, err := s.limits(r.TTL, r.Budget, p, r.Intent, r.Delegation)
	if err != nil {
		return nil, "", err
	}
	exp := now.Add(ttl)
	if exp.After(parent.Expires()) {
		exp = parent.Expires() // a child never outlives its parent
	}
	if _, err := compileScope(r.Scope); err != nil {
		return nil, "", err
	}
	if err := checkEntryBudgets(r.Scope, budget); err != nil {
		return nil, "", err
	}
	if err := s.requireConstraints(p, r.Scope); err != nil {
		return nil, "", err
	}
	id := "t_" + randomHex(12)
	ref := TaskRef{ID: id, Intent: r.Intent, Requester: r.Caller.ID.String(), Ancestors: parent.TaskChain()}
	if s.policy != nil {
		if err := s.policy.MayDelegate(ctx, r.Caller.Record, r.To, ref); err != nil {
			return nil, "", err
		}
	}
	if err := s.precheck(ctx, r.To, ref, r.Scope); err != nil {
		return nil, "", err
	}
	parentPath, err := s.taskPath(ctx, parent.Task)
	if err != nil {
		return nil, "", err
	}
	c := &Claims{
		Claims: s.baseClaims(r.To.ID.String(), now, exp),
		Task:   id, Intent: r.Intent, Scope: r.Scope, Egress: egress, Budget: budget, Depth: r.Delegation,
		Cnf:     Cnf{JKT: r.To.KeyThumbprint},
		Act:     &Actor{Sub: r.Caller.ID.String(), Act: parent.Act},
		Parents: append([]Link{{Task: parent.Task, JTI: parent.ID, Agent: parent.Subject, Scope: parent.Scope, Budget: parent.Budget}}, parent.Parents...),
	}
	return s.mint(ctx, c, now, r.Caller.ID.String(), parent.Task, parentPath+id+"/", "delegated")
}

func (s *Service) checkGrantee(r *identity.Record) error {
	switch {
	case r == nil:
		return errorf(CodeInvalidInput, "no agent to grant to")
	case r.Role != identity.RoleAgent:
		return errorf(CodeInvalidInput, "%s is not an agent: grants are for agents", r.ID)
	case r.Status != identity.StatusActive:
		return errorf(CodeAgentInactive, "%s is %s", r.ID, r.Status)
	case r.KeyThumbprint == "":
		return errorf(CodeAgentInactive, "%s has not enrolled a key yet: a grant is bound to the agent's key (warden agent credentials)", r.ID)
	}
	return nil
}

// limits applies defaults and the tier's ceilings.
func (s *Service) limits(ttl time.Duration, budget int, p tier.Preset, intent string, depth int) (time.Duration, int, error) {
	if ttl == 0 {
		ttl = min(s.set.DefaultTTL, p.GrantMaxTTL)
	}
	if ttl < 0 || ttl > p.GrantMaxTTL {
		return 0, 0, errorf(CodeInvalidInput, "ttl %v: must be positive and at most %v at tier %s", ttl, p.GrantMaxTTL, p.Tier)
	}
	if budget == 0 {
		budget = s.set.DefaultBudget
	}
	if budget < 1 || budget > MaxBudget {
		return 0, 0, errorf(CodeInvalidInput, "budget %d: must be between 1 and %d calls", budget, MaxBudget)
	}
	if intent == "" || len(intent) > 1024 || !utf8.ValidString(intent) || strings.ContainsFunc(intent, func(r rune) bool { return r < 0x20 && r != '\t' }) {
		return 0, 0, errorf(CodeInvalidInput, "intent: say in 1 to 1024 printable characters what the task is for")
	}
	if depth < 0 || depth > p.GrantMaxDelegation {
		return 0, 0, errorf(CodeInvalidInput, "delegation depth %d: must be between 0 and %d at tier %s", depth, p.GrantMaxDelegation, p.Tier)
	}
	return ttl, budget, nil
}

func checkEntryBudgets(sc Scope, budget int) error {
	for _, e := range sc {
		if e.Budget > budget {
			return errorf(CodeInvalidInput, "entry %s: its budget %d exceeds the grant's %d", e.Tool, e.Budget, budget)
		}
	}
	return nil
}

// precheck asks policy, for each literal tool of the scope, whether it is
// forbidden whatever the arguments. Glob entries are decided at call time.
func (s *Service) precheck(ctx context.Context, agent *identity.Record, task TaskRef, sc Scope) error {
	if s.policy == nil {
		return nil
	}
	for _, e := range sc {
		if strings.ContainsAny(e.Tool, "*?[\\") {
			continue
		}
		if err := s.policy.Precheck(ctx, agent, task, e.Tool); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) baseClaims(sub string, now, exp time.Time) jwt.Claims {
	return jwt.Claims{
		Issuer: s.set.TrustDomain.IDString(), Subject: sub, Audience: jwt.Audience{Audience(s.set.TrustDomain)},
		ID: "g_" + randomHex(16), IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(exp),
	}
}

// mint signs c and stores its task and budgets, recording the event before
// the commit. now is the instant c was built from: reading the clock again
// here would date the task after its grant's issue time, and a task opened
// just before a second boundary would then seem to live a second less than
// it was granted.
func (s *Service) mint(ctx context.Context, c *Claims, now time.Time, requester, parent, path, what string) (*Task, string, error) {
	tok, err := s.auth.sign(c)
	if err != nil {
		return nil, "", err
	}
	scope, err := json.Marshal(c.Scope)
	if err != nil {
		return nil, "", err
	}
	t := &Task{ID: c.Task, Agent: c.Subject, Intent: c.Intent, Requester: requester, Parent: parent, Status: StatusOpen,
		Scope: c.Scope, Egress: c.Egress, Budget: c.Budget, Depth: c.Depth, GrantID: c.ID, CreatedAt: now.UTC(), ExpiresAt: c.Expiry.Time().UTC()}
	s.mu.Lock()
	defer s.mu.Unlock()
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		var par any
		if parent != "" {
			par = parent
		}
		egress, _ := json.Marshal(c.Egress)
		if _, err := tx.ExecContext(ctx, `INSERT INTO tasks (id, agent, intent, requester, parent, path, jti, status, scope, egress, budget, depth, created_at, expires_at)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, t.ID, t.Agent, t.Intent, requester, par, path, c.ID, StatusOpen, string(scope), string(egress), c.Budget, c.Depth,
			now.UnixNano(), c.Expiry.Time().UnixNano()); err != nil {
			return fmt.Errorf("storing task: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO budgets (jti, slot, lim, reserved) VALUES (?, -1, ?, 0)`, c.ID, c.Budget); err != nil {
			return fmt.Errorf("storing budget: %w", err)
		}
		for i, e := range c.Scope {
			if e.Budget > 0 {
				if _, err := tx.ExecContext(ctx, `INSERT INTO budgets (jti, slot, lim, reserved) VALUES (?, ?, ?, 0)`, c.ID, i, e.Budget); err != nil {
					return fmt.Errorf("storing budget: %w", err)
				}
			}
		}
		e := s.event(events.ActivityCreate, requester, t, what)
		e.Message = fmt.Sprintf("task %s %s for %s: %d scope entries, %d calls, until %s", t.ID, what, t.Agent, len(t.Scope), t.Budget, t.ExpiresAt.Format(time.RFC3339))
		return s.emit(ctx, e)
	})
	if err != nil {
		return nil, "", err
	}
	s.st.update(map[string]taskStatus{t.ID: {status: StatusOpen, expires: t.ExpiresAt}})
	return t, tok, nil
}

// Complete ends a task: its grant, and every grant delegated from it, stop
// allowing anything at once. Access never carries over to the next task.
func (s *Service) Complete(ctx context.Context, actor, taskID string) (*Task, error) {
	return s.end(ctx, actor, taskID, StatusCompleted, "completed")
}

// Revoke revokes a task and every task delegated from it.
func (s *Service) Revoke(ctx context.Context, actor, taskID, reason string) (*Task, error) {
	if reason == "" {
		reason = "revoked"
	}
	return s.end(ctx, actor, taskID, StatusRevoked, reason)
}

func (s *Service) end(ctx context.Context, actor, taskID, status, reason string) (*Task, error) {
	s.mu.Lock()
	var rev Revocation
	changes := map[string]taskStatus{}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		t, path, err := s.getTask(ctx, tx, taskID)
		if err != nil {
			return err
		}
		if t.Status != StatusOpen {
			return nil // idempotent
		}
		rev, err = s.endTree(ctx, tx, path, status, reason, changes)
		if err != nil {
			return err
		}
		e := s.event(events.ActivityUpdate, actor, t, status)
		e.Message = fmt.Sprintf("task %s %s (%s): %d tasks lose their access", taskID, status, reason, len(rev.Tasks))
		return s.emit(ctx, e)
	})
	s.st.update(changes)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	s.notify(ctx, rev)
	t, _, err := s.getTask(ctx, s.db, taskID)
	return t, err
}

// RevokeAgent revokes every open task of an agent and everything delegated
// from them: a disabled agent keeps no access.
func (s *Service) RevokeAgent(ctx context.Context, actor, agent, reason string) (int, error) {
	s.mu.Lock()
	var rev Revocation
	changes := map[string]taskStatus{}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT path FROM tasks WHERE agent = ? AND status = ?`, agent, StatusOpen)
		if err != nil {
			return fmt.Errorf("finding the agent's tasks: %w", err)
		}
		var paths []string
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				rows.Close()
				return err
			}
			paths = append(paths, p)
		}
		rows.Close()
		for _, p := range paths {
			r, err := s.endTree(ctx, tx, p, StatusRevoked, reason, changes)
			if err != nil {
				return err
			}
			rev.Tasks = append(rev.Tasks, r.Tasks...)
			rev.Agents = append(rev.Agents, r.Agents...)
		}
		if len(rev.Tasks) == 0 {
			return nil
		}
		e := events.New(events.ClassAPIActivity, events.ActivityUpdate, "grant")
		e.StatusID = events.StatusSuccess
		e.Actor = &events.Actor{User: &events.User{UID: actor}}
		e.Warden = &events.Warden{Agent: agent, Reason: "agent_grants_revoked"}
		e.Message = fmt.Sprintf("revoked %d tasks of %s (%s)", len(rev.Tasks), agent, reason)
		return s.emit(ctx, e)
	})
	s.st.update(changes)
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	rev.Reason = reason
	s.notify(ctx, rev)
	return len(rev.Tasks), nil
}

// endTree ends the task at path and revokes its open descendants.
func (s *Service) endTree(ctx context.Context, tx *sql.Tx, path, status, reason string, changes map[string]taskStatus) (Revocation, error) {
	now := s.now().UnixNano()
	rows, err := tx.QueryContext(ctx, `SELECT id, agent, path, expires_at FROM tasks WHERE (path = ? OR path LIKE ? ESCAPE '\') AND status = ?`, path, likePrefix(path), StatusOpen)
	if err != nil {
		return Revocation{}, fmt.Errorf("finding delegated tasks: %w", err)
	}
	var rev Revocation
	type row struct {
		id, agent, path string
		exp             int64
	}
	var rs []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.agent, &r.path, &r.exp); err != nil {
			rows.Close()
			return Revocation{}, err
		}
		rs = append(rs, r)
	}
	rows.Close()
	for _, r := range rs {
		st, why := StatusRevoked, "ancestor task "+strings.TrimSuffix(strings.TrimPrefix(path, "/"), "/")+" "+status
		if r.path == path {
			st, why = status, reason
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tasks SET status = ?, status_reason = ?, ended_at = ? WHERE id = ?`, st, why, now, r.id); err != nil {
			return Revocation{}, fmt.Errorf("ending task %s: %w", r.id, err)
		}
		changes[r.id] = taskStatus{status: st, reason: why, expires: time.Unix(0, r.exp)}
		rev.Tasks = append(rev.Tasks, r.id)
		rev.Agents = append(rev.Agents, r.agent)
	}
	rev.Reason = reason
	return rev, nil
}

func likePrefix(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(p) + "%"
}

func (s *Service) notify(ctx context.Context, rev Revocation) {
	if len(rev.Tasks) == 0 {
		return
	}
	s.mu.Lock()
	hooks := append([]func(context.Context, Revocation){}, s.onRevoke...)
	s.mu.Unlock()
	for _, h := range hooks {
		h(ctx, rev)
	}
}

// Get returns a task.
func (s *Service) Get(ctx context.Context, id string) (*Task, error) {
	t, _, err := s.getTask(ctx, s.db, id)
	return t, err
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

const taskColumns = `t.id, t.agent, t.intent, t.requester, COALESCE(t.parent, ''), t.path, t.jti, t.status, t.status_reason, t.scope, t.egress, t.budget, t.depth, t.created_at, t.expires_at, t.ended_at, COALESCE(b.reserved, 0)`

func scanTask(row interface{ Scan(...any) error }) (*Task, string, error) {
	var (
		t            Task
		path, scope  string
		egress       string
		created, exp int64
		ended        sql.NullInt64
	)
	if err := row.Scan(&t.ID, &t.Agent, &t.Intent, &t.Requester, &t.Parent, &path, &t.GrantID, &t.Status, &t.StatusReason, &scope, &egress, &t.Budget, &t.Depth, &created, &exp, &ended, &t.Used); err != nil {
		return nil, "", err
	}
	if err := json.Unmarshal([]byte(scope), &t.Scope); err != nil {
		return nil, "", fmt.Errorf("stored task %s has a corrupt scope: %w", t.ID, err)
	}
	if err := json.Unmarshal([]byte(egress), &t.Egress); err != nil {
		return nil, "", fmt.Errorf("stored task %s has a corrupt egress list: %w", t.ID, err)
	}
	t.CreatedAt, t.ExpiresAt = time.Unix(0, created).UTC(), time.Unix(0, exp).UTC()
	if ended.Valid {
		e := time.Unix(0, ended.Int64).UTC()
		t.EndedAt = &e
	}
	return &t, path, nil
}

func (s *Service) getTask(ctx context.Context, q querier, id string) (*Task, string, error) {
	t, path, err := scanTask(q.QueryRowContext(ctx, `SELECT `+taskColumns+` FROM tasks t LEFT JOIN budgets b ON b.jti = t.jti AND b.slot = -1 WHERE t.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", errorf(CodeTaskUnknown, "no task %q", id)
	}
	if err != nil {
		return nil, "", wrapErr(CodeStateUnavailable, err, "reading task %s", id)
	}
	return t, path, nil
}

func (s *Service) taskPath(ctx context.Context, id string) (string, error) {
	_, path, err := s.getTask(ctx, s.db, id)
	return path, err
}

// List returns tasks, newest first: all, or those of one agent, or only
// open ones.
func (s *Service) List(ctx context.Context, agent string, openOnly bool, limit int) ([]Task, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	q := `SELECT ` + taskColumns + ` FROM tasks t LEFT JOIN budgets b ON b.jti = t.jti AND b.slot = -1
		WHERE (? = '' OR t.agent = ?) AND (? = 0 OR t.status = 'open') ORDER BY t.created_at DESC LIMIT ?`
	open := 0
	if openOnly {
		open = 1
	}
	rows, err := s.db.QueryContext(ctx, q, agent, agent, open, limit)
	if err != nil {
		return nil, wrapErr(CodeStateUnavailable, err, "listing tasks")
	}
	defer rows.Close()
	var out []Task
	for rows.Next() {
		t, _, err := scanTask(rows)
		if err != nil {
			return nil, wrapErr(CodeStateUnavailable, err, "listing tasks")
		}
		out = append(out, *t)
	}
	return out, rows.Err()
}

// remaining is how many calls a grant has not yet used.
func (s *Service) remaining(ctx context.Context, jti string) (int64, error) {
	c, err := s.st.counter(ctx, budgetKey{jti: jti, slot: -1})
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limit - c.used, nil
}

func (s *Service) event(activity int, actor string, t *Task, reason string) events.Event {
	e := events.New(events.ClassAPIActivity, activity, "grant")
	e.StatusID = events.StatusSuccess
	e.Metadata.CorrelationUID = t.ID
	e.Actor = &events.Actor{User: &events.User{UID: actor}}
	e.Resources = []events.Resource{{UID: t.ID, Type: "task", Name: t.Intent}}
	e.Warden = &events.Warden{Agent: t.Agent, Task: t.ID, Grant: t.GrantID, Reason: "task_" + reason}
	return e
}

// recordRefusedDelegation records a refused delegation: asking for more
// than the parent holds, or presenting a grant that is not the caller's, is
// what detection rules look for.
func (s *Service) recordRefusedDelegation(ctx context.Context, r DelegateRequest, parentTask string, err error) {
	code := string(CodeOf(err))
	e := events.New(events.ClassAPIActivity, events.ActivityCreate, "grant")
	e.StatusID, e.StatusCode, e.SeverityID = events.StatusFailure, code, events.SeverityMedium
	e.ActionID, e.DispositionID = events.ActionDenied, events.DispositionBlocked
	e.Message = "delegation refused (" + code + "): " + err.Error()
	e.Metadata.CorrelationUID = parentTask
	agent := ""
	if r.Caller != nil {
		agent = r.Caller.ID.String()
	}
	e.Actor = &events.Actor{User: &events.User{UID: agent, Type: "agent"}}
	e.Warden = &events.Warden{Agent: agent, Task: parentTask, Reason: code}
	if r.To != nil {
		e.Warden.Attrs = map[string]string{"to": r.To.ID.String()}
	}
	if err := s.sink.Emit(context.WithoutCancel(ctx), e); err != nil {
		s.log.Error("could not record a refused delegation", "code", code, "err", err)
	}
}

func (s *Service) emit(ctx context.Context, e events.Event) error {
	if err := s.sink.Emit(ctx, e); err != nil {
		return fmt.Errorf("recording event (nothing was changed): %w", err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
