package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/store"
	"github.com/warden-run/warden/tier"
)

// Status is the lifecycle state of a registered identity.
type Status string

// Statuses. A deleted identity is kept as a tombstone: its SPIFFE ID is never
// reused, so an old SVID can never come to name a new workload.
const (
	StatusActive   Status = "active"
	StatusDisabled Status = "disabled"
	StatusDeleted  Status = "deleted"
)

// ClaimSource says how Warden knows an attestation claim.
type ClaimSource string

// Claim sources. Only measured claims earn credit in an assessment.
const (
	Asserted ClaimSource = "asserted" // typed by an operator; Warden has not checked it
	Measured ClaimSource = "measured" // verified by Warden itself
)

// Claim is one attestation claim with its source.
type Claim struct {
	Value  string      `json:"value"`
	Source ClaimSource `json:"source"`
}

// Attestation is what Warden can say about a workload beyond its name.
type Attestation struct {
	Owner        Claim  `json:"owner"`                 // who deployed it (asserted)
	Model        Claim  `json:"model"`                 // the model behind the agent (asserted)
	CodeDigest   *Claim `json:"code_digest,omitempty"` // digest of the agent's code (asserted)
	Tier         Claim  `json:"tier"`                  // tier the agent is held to (asserted by the operator)
	RegisteredBy Claim  `json:"registered_by"`         // the operator identity that registered it (measured: Warden authenticated it)
}

// Record is a registered identity.
type Record struct {
	ID            spiffeid.ID
	Role          Role
	Name          string
	Owner         string
	Model         string
	CodeDigest    string
	Tier          tier.Tier
	Labels        map[string]string
	Status        Status
	KeyThumbprint string // RFC 7638 thumbprint of the enrolled key; empty until enrolment
	RegisteredBy  string // SPIFFE ID of the operator who registered it
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Attestation returns the record's attestation claims.
func (r *Record) Attestation() Attestation {
	a := Attestation{
		Owner:        Claim{r.Owner, Asserted},
		Model:        Claim{r.Model, Asserted},
		Tier:         Claim{r.Tier.String(), Asserted},
		RegisteredBy: Claim{r.RegisteredBy, Measured},
	}
	if r.CodeDigest != "" {
		a.CodeDigest = &Claim{r.CodeDigest, Asserted}
	}
	return a
}

var registryMigrations = []string{
	`CREATE TABLE identities (
		spiffe_id     TEXT PRIMARY KEY,
		role          TEXT NOT NULL,
		name          TEXT NOT NULL,
		owner         TEXT NOT NULL DEFAULT '',
		model         TEXT NOT NULL DEFAULT '',
		code_digest   TEXT NOT NULL DEFAULT '',
		tier          TEXT NOT NULL,
		labels        TEXT NOT NULL DEFAULT '{}',
		status        TEXT NOT NULL,
		key_jkt       TEXT NOT NULL DEFAULT '',
		registered_by TEXT NOT NULL DEFAULT '',
		created_at    INTEGER NOT NULL,
		updated_at    INTEGER NOT NULL
	);
	CREATE TABLE join_tokens (
		token_hash TEXT PRIMARY KEY,
		spiffe_id  TEXT NOT NULL REFERENCES identities(spiffe_id),
		created_at INTEGER NOT NULL,
		expires_at INTEGER NOT NULL,
		used_at    INTEGER
	);
	CREATE TABLE svids (
		id         TEXT PRIMARY KEY,
		spiffe_id  TEXT NOT NULL REFERENCES identities(spiffe_id),
		kind       TEXT NOT NULL,
		key_jkt    TEXT NOT NULL DEFAULT '',
		issued_at  INTEGER NOT NULL,
		expires_at INTEGER NOT NULL
	);
	CREATE INDEX svids_by_identity ON svids(spiffe_id, issued_at);`,
}

// querier is what both *sql.DB and *sql.Tx provide.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Registry stores identities, join tokens and the record of issued SVIDs.
// Verification reads an in-memory snapshot of the registry, swapped
// atomically after every committed change, so checking an identity's status
// on every call costs a map lookup and can never see a half-applied change.
type Registry struct {
	db   *store.DB
	snap atomic.Pointer[map[string]*Record]
}

// OpenRegistry migrates the registry's tables. Call Load before verifying.
func OpenRegistry(ctx context.Context, db *store.DB) (*Registry, error) {
	if err := db.Migrate(ctx, "identity", registryMigrations); err != nil {
		return nil, err
	}
	return &Registry{db: db}, nil
}

// Load reads every identity into the verification snapshot. Until it has
// succeeded, every lookup fails (closed).
func (r *Registry) Load(ctx context.Context) error {
	recs, err := r.list(ctx, r.db, "")
	if err != nil {
		return fmt.Errorf("loading identity registry: %w", err)
	}
	m := make(map[string]*Record, len(recs))
	for i := range recs {
		m[recs[i].ID.String()] = &recs[i]
	}
	r.snap.Store(&m)
	return nil
}

// Loaded reports whether the snapshot has been loaded.
func (r *Registry) Loaded() bool { return r.snap.Load() != nil }

// lookup returns the snapshot record for id.
func (r *Registry) lookup(id spiffeid.ID) (*Record, error) {
	m := r.snap.Load()
	if m == nil {
		return nil, errorf(CodeInternal, "identity registry is not loaded yet")
	}
	rec, ok := (*m)[id.String()]
	if !ok {
		return nil, errorf(CodeUnknown, "%s is not registered", id)
	}
	return rec, nil
}

// refresh re-reads one identity into the snapshot after a committed change.
// Callers serialise writes, so refreshes cannot reorder.
func (r *Registry) refresh(ctx context.Context, id spiffeid.ID) error {
	rec, err := r.get(ctx, r.db, id)
	old := r.snap.Load()
	if old == nil {
		return nil // not loaded yet: Load will read it
	}
	m := make(map[string]*Record, len(*old)+1)
	for k, v := range *old {
		m[k] = v
	}
	switch {
	case err == nil:
		m[id.String()] = rec
	case CodeOf(err) == CodeUnknown:
		delete(m, id.String())
	default:
		// The change is committed but could not be read back: drop the
		// entry so the identity fails verification rather than passing
		// with stale state, and report it.
		delete(m, id.String())
		r.snap.Store(&m)
		return err
	}
	r.snap.Store(&m)
	return nil
}

const recordColumns = `spiffe_id, role, name, owner, model, code_digest, tier, labels, status, key_jkt, registered_by, created_at, updated_at`

func scanRecord(row interface{ Scan(...any) error }) (*Record, error) {
	var (
		rec                     Record
		id, role, tr, labels, s string
		created, updated        int64
	)
	if err := row.Scan(&id, &role, &rec.Name, &rec.Owner, &rec.Model, &rec.CodeDigest, &tr, &labels, &s, &rec.KeyThumbprint, &rec.RegisteredBy, &created, &updated); err != nil {
		return nil, err
	}
	var err error
	if rec.ID, err = spiffeid.FromString(id); err != nil {
		return nil, fmt.Errorf("stored identity %q is corrupt: %w", id, err)
	}
	if rec.Tier, err = tier.Parse(tr); err != nil {
		return nil, fmt.Errorf("stored identity %s: %w", id, err)
	}
	if err := json.Unmarshal([]byte(labels), &rec.Labels); err != nil {
		return nil, fmt.Errorf("stored identity %s: labels: %w", id, err)
	}
	rec.Role, rec.Status = Role(role), Status(s)
	rec.CreatedAt, rec.UpdatedAt = time.Unix(0, created), time.Unix(0, updated)
	return &rec, nil
}

func (r *Registry) get(ctx context.Context, q querier, id spiffeid.ID) (*Record, error) {
	rec, err := scanRecord(q.QueryRowContext(ctx, `SELECT `+recordColumns+` FROM identities WHERE spiffe_id = ?`, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errorf(CodeUnknown, "%s is not registered", id)
	}
	if err != nil {
		return nil, fmt.Errorf("reading identity %s: %w", id, err)
	}
	return rec, nil
}

// list returns the identities of a role ("" for all), deleted ones included,
// ordered by SPIFFE ID.
func (r *Registry) list(ctx context.Context, q querier, role Role) ([]Record, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+recordColumns+` FROM identities WHERE ? = '' OR role = ? ORDER BY spiffe_id`, string(role), string(role))
	if err != nil {
		return nil, fmt.Errorf("listing identities: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		rec, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("listing identities: %w", err)
		}
		out = append(out, *rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing identities: %w", err)
	}
	return out, nil
}

func (r *Registry) insert(ctx context.Context, q querier, rec *Record) error {
	if rec.Labels == nil {
		rec.Labels = map[string]string{}
	}
	labels, err := json.Marshal(rec.Labels) // keys sorted: stable rows
	if err != nil {
		return err
	}
	_, err = q.ExecContext(ctx, `INSERT INTO identities (`+recordColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		rec.ID.String(), string(rec.Role), rec.Name, rec.Owner, rec.Model, rec.CodeDigest, rec.Tier.String(),
		string(labels), string(rec.Status), rec.KeyThumbprint, rec.RegisteredBy,
		rec.CreatedAt.UnixNano(), rec.UpdatedAt.UnixNano())
	if err != nil {
		return fmt.Errorf("storing identity %s: %w", rec.ID, err)
	}
	return nil
}

func (r *Registry) setStatus(ctx context.Context, q querier, id spiffeid.ID, s Status, now time.Time) error {
	_, err := q.ExecContext(ctx, `UPDATE identities SET status = ?, updated_at = ? WHERE spiffe_id = ?`, string(s), now.UnixNano(), id.String())
	if err != nil {
		return fmt.Errorf("updating identity %s: %w", id, err)
	}
	return nil
}

func (r *Registry) setKey(ctx context.Context, q querier, id spiffeid.ID, jkt string, now time.Time) error {
	_, err := q.ExecContext(ctx, `UPDATE identities SET key_jkt = ?, updated_at = ? WHERE spiffe_id = ?`, jkt, now.UnixNano(), id.String())
	if err != nil {
		return fmt.Errorf("recording key of %s: %w", id, err)
	}
	return nil
}

// JoinToken is a one-time enrolment secret. Only its hash is stored.
type JoinToken struct {
	Token     string
	ID        spiffeid.ID
	ExpiresAt time.Time
}

func hashToken(t string) string {
	sum := sha256.Sum256([]byte(t))
	return hex.EncodeToString(sum[:])
}

func (r *Registry) issueJoinToken(ctx context.Context, q querier, id spiffeid.ID, ttl time.Duration, now time.Time) (JoinToken, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return JoinToken{}, fmt.Errorf("generating join token: %w", err)
	}
	t := JoinToken{Token: b64url(b[:]), ID: id, ExpiresAt: now.Add(ttl)}
	_, err := q.ExecContext(ctx, `INSERT INTO join_tokens (token_hash, spiffe_id, created_at, expires_at) VALUES (?,?,?,?)`,
		hashToken(t.Token), id.String(), now.UnixNano(), t.ExpiresAt.UnixNano())
	if err != nil {
		return JoinToken{}, fmt.Errorf("storing join token: %w", err)
	}
	return t, nil
}

// redeemJoinToken marks a join token used and returns the identity it is
// for. A token is good exactly once, before it expires.
func (r *Registry) redeemJoinToken(ctx context.Context, q querier, token string, now time.Time) (spiffeid.ID, error) {
	h := hashToken(token)
	var (
		id      string
		expires int64
		used    sql.NullInt64
	)
	err := q.QueryRowContext(ctx, `SELECT spiffe_id, expires_at, used_at FROM join_tokens WHERE token_hash = ?`, h).Scan(&id, &expires, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return spiffeid.ID{}, errorf(CodeJoinTokenBad, "join token is not known to this control plane")
	}
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("reading join token: %w", err)
	}
	if used.Valid {
		return spiffeid.ID{}, errorf(CodeJoinTokenUsed, "join token was already used at %s; ask an operator for a new one (warden agent join-token)", time.Unix(0, used.Int64).UTC().Format(time.RFC3339))
	}
	if now.UnixNano() >= expires {
		return spiffeid.ID{}, errorf(CodeJoinTokenExpiry, "join token expired at %s; ask an operator for a new one (warden agent join-token)", time.Unix(0, expires).UTC().Format(time.RFC3339))
	}
	res, err := q.ExecContext(ctx, `UPDATE join_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL`, now.UnixNano(), h)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("redeeming join token: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return spiffeid.ID{}, errorf(CodeJoinTokenUsed, "join token was already used")
	}
	sid, err := spiffeid.FromString(id)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("join token names a corrupt identity %q: %w", id, err)
	}
	return sid, nil
}

// SVIDRecord is one issued SVID, kept for audit and assessment.
type SVIDRecord struct {
	ID        string // certificate serial (hex) or JWT jti
	SPIFFEID  string
	Kind      string // "x509" or "jwt"
	KeyJKT    string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

func (r *Registry) recordSVID(ctx context.Context, q querier, s SVIDRecord) error {
	_, err := q.ExecContext(ctx, `INSERT INTO svids (id, spiffe_id, kind, key_jkt, issued_at, expires_at) VALUES (?,?,?,?,?,?)`,
		s.ID, s.SPIFFEID, s.Kind, s.KeyJKT, s.IssuedAt.UnixNano(), s.ExpiresAt.UnixNano())
	if err != nil {
		return fmt.Errorf("recording issued SVID: %w", err)
	}
	return nil
}

// SVIDs returns the SVIDs issued to id, newest first, at most limit.
func (r *Registry) SVIDs(ctx context.Context, id spiffeid.ID, limit int) ([]SVIDRecord, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT id, spiffe_id, kind, key_jkt, issued_at, expires_at FROM svids WHERE spiffe_id = ? ORDER BY issued_at DESC LIMIT ?`, id.String(), limit)
	if err != nil {
		return nil, fmt.Errorf("listing SVIDs: %w", err)
	}
	defer rows.Close()
	var out []SVIDRecord
	for rows.Next() {
		var s SVIDRecord
		var iss, exp int64
		if err := rows.Scan(&s.ID, &s.SPIFFEID, &s.Kind, &s.KeyJKT, &iss, &exp); err != nil {
			return nil, fmt.Errorf("listing SVIDs: %w", err)
		}
		s.IssuedAt, s.ExpiresAt = time.Unix(0, iss), time.Unix(0, exp)
		out = append(out, s)
	}
	return out, rows.Err()
}
