package identity

import (
	"context"
	"crypto"
	"crypto/x509"
	"database/sql"
	"fmt"
	"log/slog"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/store"
	"github.com/warden-run/warden/tier"
)

// Settings are the identity service's lifetimes and tier. Zero lifetimes are
// invalid; config.Config fills them from the tier preset.
type Settings struct {
	TrustDomain  spiffeid.TrustDomain
	Tier         tier.Tier // the deployment's tier
	X509TTL      time.Duration
	X509MaxTTL   time.Duration
	JWTTTL       time.Duration
	JWTMaxTTL    time.Duration
	JoinTokenTTL time.Duration
}

// Service registers identities, enrols them and issues their SVIDs. Every
// change is recorded through the event sink before it is committed: if the
// record cannot be written, the change does not happen.
type Service struct {
	set      Settings
	db       *store.DB
	reg      *Registry
	ca       *CA
	jwt      *JWTAuthority
	sink     events.Sink
	log      *slog.Logger
	now      func() time.Time
	verifier *Verifier

	mu         sync.Mutex // serialises writes, so snapshot refreshes follow commit order
	watchers   []func(context.Context, Record)
	registered []func(context.Context, Record)
}

// NewService assembles the identity service. now may be nil (time.Now).
func NewService(set Settings, db *store.DB, reg *Registry, ca *CA, jwtAuth *JWTAuthority, sink events.Sink, log *slog.Logger, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{set: set, db: db, reg: reg, ca: ca, jwt: jwtAuth, sink: sink, log: log, now: now}
	s.verifier = NewVerifier(set.TrustDomain, []*x509.Certificate{ca.Root()},
		map[string]crypto.PublicKey{jwtAuth.KeyID(): jwtAuth.Public()}, reg, now)
	return s
}

// Verifier returns the verifier over this service's CA, keys and registry.
func (s *Service) Verifier() *Verifier { return s.verifier }

// Registry returns the registry the service writes to.
func (s *Service) Registry() *Registry { return s.reg }

// CA returns the certificate authority.
func (s *Service) CA() *CA { return s.ca }

// JWTKeys returns the JWT-SVID verification keys by key id.
func (s *Service) JWTKeys() map[string]crypto.PublicKey {
	return map[string]crypto.PublicKey{s.jwt.KeyID(): s.jwt.Public()}
}

// OnStatusChange registers fn to run after an identity's status change has
// been committed (disable, enable, delete): task grants use it to revoke an
// agent's grants the moment it is disabled. Register before serving.
func (s *Service) OnStatusChange(fn func(context.Context, Record)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchers = append(s.watchers, fn)
}

// OnRegister registers fn to run after a new identity is committed (the
// audit log tightens its durability when an agent of a stricter tier
// arrives). Register before serving.
func (s *Service) OnRegister(fn func(context.Context, Record)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.registered = append(s.registered, fn)
}

// Spec is what an operator supplies to register an identity.
type Spec struct {
	Role       Role
	Name       string
	Owner      string // email of who deployed it (agents)
	Model      string // agents
	CodeDigest string // "sha256:<hex>" (agents, optional)
	Tier       tier.Tier
	Labels     map[string]string
}

var (
	digestRe   = regexp.MustCompile(`^(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})$`)
	labelKeyRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9._/-]{0,62}[a-z0-9])?$`)
)

const (
	maxLabels     = 32
	maxLabelValue = 256
	maxModelLen   = 128
)

// validate checks a spec and fills the tier. Every message names the field.
func (s *Service) validate(sp *Spec) error {
	if !sp.Role.valid() || sp.Role == RoleControlPlane {
		return errorf(CodeInvalidInput, "cannot register an identity of role %q", sp.Role)
	}
	if err := ValidateName(sp.Name); err != nil {
		return &Error{Code: CodeInvalidInput, Msg: err.Error()}
	}
	if sp.Tier == 0 {
		sp.Tier = s.set.Tier
	}
	if !sp.Tier.Valid() {
		return errorf(CodeInvalidInput, "tier: not a tier")
	}
	if sp.Tier < s.set.Tier {
		return errorf(CodeInvalidInput, "tier %s is below the deployment's tier %s: an agent's tier can only tighten its own calls", sp.Tier, s.set.Tier)
	}
	if sp.Role == RoleAgent {
		if sp.Owner == "" {
			return errorf(CodeInvalidInput, "owner: required (the email of who deployed the agent)")
		}
		a, err := mail.ParseAddress(sp.Owner)
		if err != nil || a.Address != sp.Owner {
			return errorf(CodeInvalidInput, "owner %q is not an email address", sp.Owner)
		}
		if sp.Model == "" {
			return errorf(CodeInvalidInput, "model: required (e.g. claude-sonnet)")
		}
		if len(sp.Model) > maxModelLen || strings.ContainsFunc(sp.Model, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return errorf(CodeInvalidInput, "model %q: at most %d printable characters", sp.Model, maxModelLen)
		}
		if sp.CodeDigest != "" && !digestRe.MatchString(sp.CodeDigest) {
			return errorf(CodeInvalidInput, "code digest %q: want sha256:<64 lowercase hex> (or sha384/sha512)", sp.CodeDigest)
		}
	}
	if len(sp.Labels) > maxLabels {
		return errorf(CodeInvalidInput, "labels: %d given, at most %d", len(sp.Labels), maxLabels)
	}
	for k, v := range sp.Labels {
		if !labelKeyRe.MatchString(k) {
			return errorf(CodeInvalidInput, "label key %q: lowercase letters, digits, '.', '-', '_', '/', at most 64", k)
		}
		if len(v) > maxLabelValue || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return errorf(CodeInvalidInput, "label %s: value must be at most %d printable characters", k, maxLabelValue)
		}
	}
	return nil
}

// Register records a new identity. For agents it also issues a one-time
// join token with which the agent enrols its key. actor is the SPIFFE ID
// (or local command) that asked.
func (s *Service) Register(ctx context.Context, actor string, sp Spec) (*Record, *JoinToken, error) {
	if err := s.validate(&sp); err != nil {
		return nil, nil, err
	}
	id, err := NewID(s.set.TrustDomain, sp.Role, sp.Name)
	if err != nil {
		return nil, nil, &Error{Code: CodeInvalidInput, Msg: err.Error()}
	}
	now := s.now()
	rec := &Record{
		ID: id, Role: sp.Role, Name: sp.Name, Owner: sp.Owner, Model: sp.Model, CodeDigest: sp.CodeDigest,
		Tier: sp.Tier, Labels: sp.Labels, Status: StatusActive, RegisteredBy: actor, CreatedAt: now, UpdatedAt: now,
	}
	var tok *JoinToken
	err = s.write(ctx, id, func(tx *sql.Tx) error {
		if old, err := s.reg.get(ctx, tx, id); err == nil {
			if old.Status == StatusDeleted {
				return errorf(CodeConflict, "%s %q was deleted; SPIFFE IDs are never reused, so choose another name", sp.Role, sp.Name)
			}
			return errorf(CodeConflict, "%s %q already exists", sp.Role, sp.Name)
		} else if CodeOf(err) != CodeUnknown {
			return err
		}
		if err := s.reg.insert(ctx, tx, rec); err != nil {
			return err
		}
		if sp.Role == RoleAgent {
			t, err := s.reg.issueJoinToken(ctx, tx, id, s.joinTokenTTL(sp.Tier), now)
			if err != nil {
				return err
			}
			tok = &t
		}
		e := s.event(events.ClassAccountChange, events.ActivityCreate, actor, rec, "registered")
		e.Message = fmt.Sprintf("registered %s", id)
		return s.emit(ctx, e)
	})
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	hooks := append([]func(context.Context, Record){}, s.registered...)
	s.mu.Unlock()
	for _, h := range hooks {
		h(ctx, *rec)
	}
	return rec, tok, nil
}

// NewJoinToken issues a fresh one-time join token for a registered agent,
// e.g. after the first one expired or the agent lost its key. Enrolling with
// it replaces the agent's key: SVIDs for the old key stop verifying.
func (s *Service) NewJoinToken(ctx context.Context, actor string, name string) (*JoinToken, error) {
	id, err := NewID(s.set.TrustDomain, RoleAgent, name)
	if err != nil {
		return nil, &Error{Code: CodeInvalidInput, Msg: err.Error()}
	}
	var tok JoinToken
	err = s.write(ctx, id, func(tx *sql.Tx) error {
		rec, err := s.reg.get(ctx, tx, id)
		if err != nil {
			return err
		}
		if rec.Status != StatusActive {
			return errorf(statusCode(rec.Status), "%s is %s: enable it before issuing a join token", id, rec.Status)
		}
		if tok, err = s.reg.issueJoinToken(ctx, tx, id, s.joinTokenTTL(rec.Tier), s.now()); err != nil {
			return err
		}
		return s.emit(ctx, s.event(events.ClassAccountChange, events.ActivityAccountRotate, actor, rec, "join_token_issued"))
	})
	if err != nil {
		return nil, err
	}
	return &tok, nil
}

// Enroll redeems a join token: it checks the CSR against the identity the
// token is for, records the agent's key and issues its first X.509-SVID. The
// private key never leaves the agent; only the CSR travels. A refused
// enrolment does not use up the token.
func (s *Service) Enroll(ctx context.Context, token string, csrBytes []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	var rec *Record
	now := s.now()
	// The identity is known only once the token is read, so take the write
	// lock first (like write does) and refresh after the commit.
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		id, err := s.reg.redeemJoinToken(ctx, tx, token, now)
		if err != nil {
			return err
		}
		if rec, err = s.reg.get(ctx, tx, id); err != nil {
			return err
		}
		if rec.Status != StatusActive {
			return errorf(statusCode(rec.Status), "%s is %s", id, rec.Status)
		}
		csr, err := ParseCSR(csrBytes, id)
		if err != nil {
			return err
		}
		jkt, err := Thumbprint(csr.PublicKey)
		if err != nil {
			return wrapErr(CodeCSRInvalid, err, "certificate signing request key")
		}
		if err := s.reg.setKey(ctx, tx, id, jkt, now); err != nil {
			return err
		}
		rec.KeyThumbprint = jkt
		if chain, err = s.issueX509(ctx, tx, rec, csr.PublicKey, now); err != nil {
			return err
		}
		e := s.event(events.ClassAuthentication, events.ActivityServiceTicket, id.String(), rec, "enrolled")
		e.Message = fmt.Sprintf("%s enrolled its key and received an X.509-SVID (serial %x, expires %s)", id, chain[0].SerialNumber, chain[0].NotAfter.UTC().Format(time.RFC3339))
		if err := s.emit(ctx, e); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		s.refused(ctx, "enrol", "", err)
		return nil, err
	}
	if err := s.refreshLocked(ctx, rec.ID); err != nil {
		return nil, err
	}
	return chain, nil
}

// Renew issues a new X.509-SVID to a caller that proved its current one. The
// key must stay the same: grants are bound to it.
func (s *Service) Renew(ctx context.Context, caller *Caller, csrBytes []byte) ([]*x509.Certificate, error) {
	chain, err := s.renew(ctx, caller, csrBytes)
	if err != nil {
		s.refused(ctx, "renew", caller.ID.String(), err)
	}
	return chain, err
}

func (s *Service) renew(ctx context.Context, caller *Caller, csrBytes []byte) ([]*x509.Certificate, error) {
	csr, err := ParseCSR(csrBytes, caller.ID)
	if err != nil {
		return nil, err
	}
	jkt, err := Thumbprint(csr.PublicKey)
	if err != nil {
		return nil, wrapErr(CodeCSRInvalid, err, "certificate signing request key")
	}
	if jkt != caller.KeyThumbprint {
		return nil, errorf(CodeKeyChanged, "renewal must keep the same key (grants are bound to it); to change keys, enrol again with a new join token")
	}
	var chain []*x509.Certificate
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		if chain, err = s.issueX509(ctx, tx, caller.Record, csr.PublicKey, now); err != nil {
			return err
		}
		e := s.event(events.ClassAuthentication, events.ActivityServiceTicketRen, caller.ID.String(), caller.Record, "renewed")
		e.Message = fmt.Sprintf("%s renewed its X.509-SVID (serial %x, expires %s)", caller.ID, chain[0].SerialNumber, chain[0].NotAfter.UTC().Format(time.RFC3339))
		return s.emit(ctx, e)
	})
	if err != nil {
		return nil, err
	}
	return chain, nil
}

// IssueLocal registers (if needed) and issues an X.509-SVID for an operator
// or gateway identity directly from the data directory, without a join token:
// whoever can run it already holds the CA key. `warden init` uses it for the
// first operator credential.
func (s *Service) IssueLocal(ctx context.Context, role Role, name string, pub crypto.PublicKey, ttl time.Duration) ([]*x509.Certificate, error) {
	if role != RoleAdmin && role != RoleGateway {
		return nil, errorf(CodeInvalidInput, "local issuance is for admin and gateway identities, not %s", role)
	}
	id, err := NewID(s.set.TrustDomain, role, name)
	if err != nil {
		return nil, &Error{Code: CodeInvalidInput, Msg: err.Error()}
	}
	jkt, err := Thumbprint(pub)
	if err != nil {
		return nil, err
	}
	var chain []*x509.Certificate
	err = s.write(ctx, id, func(tx *sql.Tx) error {
		now := s.now()
		rec, err := s.reg.get(ctx, tx, id)
		switch {
		case CodeOf(err) == CodeUnknown:
			rec = &Record{ID: id, Role: role, Name: name, Tier: s.set.Tier, Status: StatusActive,
				RegisteredBy: "local:warden", CreatedAt: now, UpdatedAt: now, KeyThumbprint: jkt}
			if err := s.reg.insert(ctx, tx, rec); err != nil {
				return err
			}
		case err != nil:
			return err
		case rec.Status != StatusActive:
			return errorf(statusCode(rec.Status), "%s is %s", id, rec.Status)
		default:
			if err := s.reg.setKey(ctx, tx, id, jkt, now); err != nil {
				return err
			}
			rec.KeyThumbprint = jkt
		}
		chain, err = s.ca.IssueX509SVID(id, pub, ttl, now)
		if err != nil {
			return err
		}
		if err := s.reg.recordSVID(ctx, tx, SVIDRecord{ID: fmt.Sprintf("%x", chain[0].SerialNumber), SPIFFEID: id.String(), Kind: "x509", KeyJKT: jkt, IssuedAt: now, ExpiresAt: chain[0].NotAfter}); err != nil {
			return err
		}
		return s.emit(ctx, s.event(events.ClassAuthentication, events.ActivityServiceTicket, "local:warden", rec, "issued_locally"))
	})
	return chain, err
}

// MintJWTSVID issues a JWT-SVID to a caller, for the given audiences, with
// the caller's attestation claims inside. ttl 0 takes the default.
func (s *Service) MintJWTSVID(ctx context.Context, caller *Caller, audience []string, ttl time.Duration) (string, time.Time, error) {
	if len(audience) == 0 || len(audience) > 8 {
		return "", time.Time{}, errorf(CodeInvalidInput, "audience: give between 1 and 8 audiences")
	}
	for _, a := range audience {
		if a == "" || len(a) > 256 {
			return "", time.Time{}, errorf(CodeInvalidInput, "audience %q: must be 1 to 256 characters", a)
		}
	}
	ceiling := min(s.set.JWTMaxTTL, tier.For(tier.Stricter(s.set.Tier, caller.Record.Tier)).JWTSVIDMaxTTL)
	switch {
	case ttl == 0:
		ttl = min(s.set.JWTTTL, ceiling)
	case ttl < 0 || ttl > ceiling:
		return "", time.Time{}, errorf(CodeInvalidInput, "ttl %v: must be positive and at most %v", ttl, ceiling)
	}
	now := s.now()
	att := caller.Attestation()
	tok, jti, err := s.jwt.mint(caller.ID, audience, ttl, now, &att)
	if err != nil {
		return "", time.Time{}, err
	}
	exp := now.Add(ttl)
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.reg.recordSVID(ctx, tx, SVIDRecord{ID: jti, SPIFFEID: caller.ID.String(), Kind: "jwt", KeyJKT: caller.KeyThumbprint, IssuedAt: now, ExpiresAt: exp}); err != nil {
			return err
		}
		e := s.event(events.ClassAuthentication, events.ActivityServiceTicket, caller.ID.String(), caller.Record, "jwt_svid_issued")
		e.Message = fmt.Sprintf("issued a JWT-SVID to %s for %s, expires %s", caller.ID, strings.Join(audience, ", "), exp.UTC().Format(time.RFC3339))
		return s.emit(ctx, e)
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return tok, exp, nil
}

// SetStatus enables, disables or deletes an identity. Deletion is final. The
// change takes effect at the next verification; watchers (grant revocation)
// run after it is committed.
func (s *Service) SetStatus(ctx context.Context, actor string, role Role, name string, to Status) (*Record, error) {
	id, err := NewID(s.set.TrustDomain, role, name)
	if err != nil {
		return nil, &Error{Code: CodeInvalidInput, Msg: err.Error()}
	}
	var rec *Record
	err = s.write(ctx, id, func(tx *sql.Tx) error {
		if rec, err = s.reg.get(ctx, tx, id); err != nil {
			return err
		}
		if rec.Status == StatusDeleted {
			return errorf(CodeDeleted, "%s was deleted; deletion is final", id)
		}
		if rec.Status == to {
			return nil // idempotent: nothing to record
		}
		activity := map[Status]int{StatusActive: events.ActivityAccountEnable, StatusDisabled: events.ActivityAccountDisable, StatusDeleted: events.ActivityAccountDelete}[to]
		if activity == 0 {
			return errorf(CodeInvalidInput, "unknown status %q", to)
		}
		now := s.now()
		if err := s.reg.setStatus(ctx, tx, id, to, now); err != nil {
			return err
		}
		rec.Status, rec.UpdatedAt = to, now
		e := s.event(events.ClassAccountChange, activity, actor, rec, string(to))
		e.Message = fmt.Sprintf("%s is now %s", id, to)
		return s.emit(ctx, e)
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	watchers := append([]func(context.Context, Record){}, s.watchers...)
	s.mu.Unlock()
	for _, w := range watchers {
		w(ctx, *rec)
	}
	return rec, nil
}

// Get returns a registered identity.
func (s *Service) Get(ctx context.Context, role Role, name string) (*Record, error) {
	id, err := NewID(s.set.TrustDomain, role, name)
	if err != nil {
		return nil, &Error{Code: CodeInvalidInput, Msg: err.Error()}
	}
	return s.reg.get(ctx, s.db, id)
}

// List returns the identities of a role ("" for all), deleted ones included.
func (s *Service) List(ctx context.Context, role Role) ([]Record, error) {
	return s.reg.list(ctx, s.db, role)
}

// write runs fn in a transaction under the write lock and refreshes the
// verification snapshot for id after it commits.
func (s *Service) write(ctx context.Context, id spiffeid.ID, fn func(*sql.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.InTx(ctx, fn); err != nil {
		return err
	}
	return s.refreshLocked(ctx, id)
}

func (s *Service) refreshLocked(ctx context.Context, id spiffeid.ID) error {
	if err := s.reg.refresh(ctx, id); err != nil {
		return fmt.Errorf("change committed, but refreshing %s failed (it fails verification until reload): %w", id, err)
	}
	return nil
}

func (s *Service) issueX509(ctx context.Context, tx *sql.Tx, rec *Record, pub crypto.PublicKey, now time.Time) ([]*x509.Certificate, error) {
	ttl := min(s.set.X509TTL, s.set.X509MaxTTL, tier.For(tier.Stricter(s.set.Tier, rec.Tier)).X509SVIDMaxTTL)
	chain, err := s.ca.IssueX509SVID(rec.ID, pub, ttl, now)
	if err != nil {
		return nil, err
	}
	err = s.reg.recordSVID(ctx, tx, SVIDRecord{ID: fmt.Sprintf("%x", chain[0].SerialNumber), SPIFFEID: rec.ID.String(),
		Kind: "x509", KeyJKT: rec.KeyThumbprint, IssuedAt: now, ExpiresAt: chain[0].NotAfter})
	return chain, err
}

func (s *Service) joinTokenTTL(t tier.Tier) time.Duration {
	return min(s.set.JoinTokenTTL, tier.For(tier.Stricter(s.set.Tier, t)).JoinTokenTTL)
}

func statusCode(st Status) Code {
	if st == StatusDeleted {
		return CodeDeleted
	}
	return CodeDisabled
}

// event builds an identity event about rec, done by actor.
func (s *Service) event(class events.Class, activity int, actor string, rec *Record, reason string) events.Event {
	e := events.New(class, activity, "identity")
	e.StatusID = events.StatusSuccess
	e.Actor = &events.Actor{User: &events.User{UID: actor}}
	e.User = &events.User{UID: rec.ID.String(), Name: rec.Name, Type: string(rec.Role)}
	e.Warden = &events.Warden{Reason: reason}
	if rec.Role == RoleAgent {
		e.Warden.Agent = rec.ID.String()
	}
	return e
}

func (s *Service) emit(ctx context.Context, e events.Event) error {
	if err := s.sink.Emit(ctx, e); err != nil {
		return fmt.Errorf("recording event (the change was not made): %w", err)
	}
	return nil
}

// refused records a refused enrolment or renewal. The refusal itself stands
// whether or not it can be recorded; a recording failure is logged.
func (s *Service) refused(ctx context.Context, op, who string, cause error) {
	e := events.New(events.ClassAuthentication, events.ActivityServiceTicket, "identity")
	e.StatusID, e.SeverityID = events.StatusFailure, events.SeverityMedium
	e.StatusCode, e.StatusDetail = string(CodeOf(cause)), cause.Error()
	e.Message = op + " refused"
	e.Warden = &events.Warden{Reason: string(CodeOf(cause))}
	if who != "" {
		e.Actor = &events.Actor{User: &events.User{UID: who}}
		e.Warden.Agent = who
	}
	if err := s.sink.Emit(ctx, e); err != nil {
		s.log.Error("could not record refused "+op, "cause", cause, "err", err)
	}
}
