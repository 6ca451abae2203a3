package identity

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/warden-run/warden/internal/jwsheader"
)

// Caller is an identity that has just been verified.
type Caller struct {
	ID     spiffeid.ID
	Role   Role
	Name   string
	Method string // "x509-svid" or "jwt-svid"
	// KeyThumbprint is the RFC 7638 thumbprint of the identity's key: proven
	// by the TLS handshake for an X.509-SVID, the enrolled key for a
	// JWT-SVID (a bearer token; possession must then be proven separately,
	// e.g. with DPoP).
	KeyThumbprint string
	ExpiresAt     time.Time
	// Record is the registry entry as of this verification.
	Record *Record
}

// Attestation returns the caller's attestation claims.
func (c *Caller) Attestation() Attestation { return c.Record.Attestation() }

// Verifier proves identities against the trust bundle and the registry.
// Verification checks the registry on every call: disabling an identity
// takes effect on its very next request.
type Verifier struct {
	td      spiffeid.TrustDomain
	roots   *x509bundle.Bundle
	jwtKeys map[string]crypto.PublicKey
	reg     *Registry
	now     func() time.Time
}

// NewVerifier returns a verifier for the trust domain's CA roots and JWT
// keys, checking status against reg.
func NewVerifier(td spiffeid.TrustDomain, roots []*x509.Certificate, jwtKeys map[string]crypto.PublicKey, reg *Registry, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{td: td, roots: x509bundle.FromX509Authorities(td, roots), jwtKeys: jwtKeys, reg: reg, now: now}
}

// VerifyChain checks that chain (leaf first) is an X.509-SVID of the trust
// domain valid at now, and returns its SPIFFE ID. It does not consult the
// registry: clients use it to check the control plane's server certificate.
func VerifyChain(chain []*x509.Certificate, roots *x509bundle.Bundle, now time.Time) (spiffeid.ID, error) {
	if len(chain) == 0 {
		return spiffeid.ID{}, errorf(CodeMalformed, "no certificate presented")
	}
	leaf := chain[0]
	if leaf.IsCA {
		return spiffeid.ID{}, errorf(CodeMalformed, "presented certificate is a CA certificate, not an X.509-SVID")
	}
	if now.After(leaf.NotAfter) {
		return spiffeid.ID{}, errorf(CodeExpired, "certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return spiffeid.ID{}, errorf(CodeNotYetValid, "certificate is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return spiffeid.ID{}, wrapErr(CodeMalformed, err, "certificate is not an X.509-SVID")
	}
	if id.TrustDomain() != roots.TrustDomain() {
		return spiffeid.ID{}, errorf(CodeUntrusted, "%s belongs to trust domain %s, not %s", id, id.TrustDomain(), roots.TrustDomain())
	}
	if _, _, err := x509svid.Verify(chain, roots, x509svid.WithTime(now)); err != nil {
		return spiffeid.ID{}, wrapErr(CodeUntrusted, err, "certificate for %s does not chain to the %s trust bundle", id, roots.TrustDomain())
	}
	return id, nil
}

// VerifyX509 verifies an X.509-SVID chain (leaf first, as presented in a
// TLS handshake) and the identity's current status. When roles are given,
// the identity must have one of them.
func (v *Verifier) VerifyX509(chain []*x509.Certificate, roles ...Role) (*Caller, error) {
	id, err := VerifyChain(chain, v.roots, v.now())
	if err != nil {
		return nil, err
	}
	c, err := v.caller(id, roles)
	if err != nil {
		return nil, err
	}
	jkt, err := Thumbprint(chain[0].PublicKey)
	if err != nil {
		return nil, wrapErr(CodeMalformed, err, "certificate key")
	}
	if jkt != c.Record.KeyThumbprint {
		return nil, errorf(CodeSuperseded, "certificate for %s was issued for a key it no longer holds (it re-enrolled with a new key)", id)
	}
	c.Method, c.KeyThumbprint, c.ExpiresAt = "x509-svid", jkt, chain[0].NotAfter
	return c, nil
}

// VerifyJWT verifies a JWT-SVID for the given audience and the identity's
// current status. When roles are given, the identity must have one of them.
func (v *Verifier) VerifyJWT(token, audience string, roles ...Role) (*Caller, error) {
	claims, err := v.parseJWT(token, audience)
	if err != nil {
		return nil, err
	}
	id, err := spiffeid.FromString(claims.Subject)
	if err != nil {
		return nil, wrapErr(CodeMalformed, err, "JWT-SVID subject %q is not a SPIFFE ID", claims.Subject)
	}
	if id.TrustDomain() != v.td {
		return nil, errorf(CodeUntrusted, "JWT-SVID subject %s is not in trust domain %s", id, v.td)
	}
	c, err := v.caller(id, roles)
	if err != nil {
		return nil, err
	}
	c.Method, c.KeyThumbprint, c.ExpiresAt = "jwt-svid", c.Record.KeyThumbprint, claims.Expiry.Time()
	return c, nil
}

func (v *Verifier) parseJWT(token, audience string) (*JWTSVIDClaims, error) {
	h, err := jwsheader.Parse(token)
	if err != nil {
		return nil, wrapErr(CodeMalformed, err, "JWT-SVID is malformed")
	}
	if !slices.Contains(jwtSVIDAlgs, joseAlg(h.Alg)) {
		return nil, errorf(CodeJWTAlg, "JWT-SVID algorithm %q is not allowed (want ES256)", h.Alg)
	}
	if h.Typ != JWTSVIDType {
		return nil, errorf(CodeJWTType, "token has typ %q, not a JWT-SVID (typ %q)", h.Typ, JWTSVIDType)
	}
	key, ok := v.jwtKeys[h.Kid]
	if !ok {
		return nil, errorf(CodeUntrusted, "JWT-SVID key %q is not in the %s trust bundle", h.Kid, v.td)
	}
	tok, err := jwt.ParseSigned(token, jwtSVIDAlgs)
	if err != nil {
		return nil, wrapErr(CodeMalformed, err, "JWT-SVID is malformed")
	}
	var c JWTSVIDClaims
	if err := tok.Claims(key, &c); err != nil {
		var je *json.SyntaxError
		if errors.As(err, &je) {
			return nil, wrapErr(CodeMalformed, err, "JWT-SVID claims are malformed")
		}
		return nil, wrapErr(CodeJWTSignature, err, "JWT-SVID signature does not verify")
	}
	now := v.now()
	if c.Expiry == nil || c.Subject == "" || len(c.Audience) == 0 {
		return nil, errorf(CodeMalformed, "JWT-SVID lacks a required claim (sub, aud, exp)")
	}
	if !now.Before(c.Expiry.Time()) {
		return nil, errorf(CodeExpired, "JWT-SVID expired at %s", c.Expiry.Time().UTC().Format(time.RFC3339))
	}
	if c.IssuedAt != nil && c.IssuedAt.Time().After(now.Add(clockSkew)) {
		return nil, errorf(CodeNotYetValid, "JWT-SVID is issued in the future (%s)", c.IssuedAt.Time().UTC().Format(time.RFC3339))
	}
	if !c.Audience.Contains(audience) {
		return nil, errorf(CodeJWTAudience, "JWT-SVID is for audience %v, not %q", []string(c.Audience), audience)
	}
	return &c, nil
}

// caller looks the identity up in the registry snapshot and checks its role
// and status.
func (v *Verifier) caller(id spiffeid.ID, roles []Role) (*Caller, error) {
	role, name, err := RoleOf(id)
	if err != nil {
		return nil, wrapErr(CodeMalformed, err, "SPIFFE ID")
	}
	if len(roles) > 0 && !slices.Contains(roles, role) {
		return nil, errorf(CodeWrongRole, "%s has role %s; this endpoint accepts only %s", id, role, rolesList(roles))
	}
	rec, err := v.reg.lookup(id)
	if err != nil {
		return nil, err
	}
	switch rec.Status {
	case StatusActive:
	case StatusDisabled:
		return nil, errorf(CodeDisabled, "%s is disabled", id)
	case StatusDeleted:
		return nil, errorf(CodeDeleted, "%s was deleted", id)
	default:
		return nil, errorf(CodeInternal, "%s has unknown status %q", id, rec.Status)
	}
	return &Caller{ID: id, Role: role, Name: name, Record: rec}, nil
}

func rolesList(roles []Role) string {
	s := ""
	for i, r := range roles {
		if i > 0 {
			s += " or "
		}
		s += string(r)
	}
	return s
}

// Lookup returns the registered identity id as a Caller, checking its role
// and status but no credential: for an enforcement point that authenticated
// the caller itself and asks whether that identity is still active. The
// caller's key thumbprint is the enrolled one.
func (v *Verifier) Lookup(id spiffeid.ID, roles ...Role) (*Caller, error) {
	if id.TrustDomain() != v.td {
		return nil, errorf(CodeUntrusted, "%s is not in trust domain %s", id, v.td)
	}
	c, err := v.caller(id, roles)
	if err != nil {
		return nil, err
	}
	c.Method, c.KeyThumbprint = "lookup", c.Record.KeyThumbprint
	return c, nil
}

// Root returns the trust anchor the verifier checks X.509 chains against.
func (v *Verifier) Root() *x509.Certificate { return v.roots.X509Authorities()[0] }

// CheckPeer checks that a TLS peer's certificate (already verified against
// the trust bundle by the handshake) is an X.509-SVID of role in td: the
// client's side of "every endpoint checks the role of the ID it is given".
func CheckPeer(leaf *x509.Certificate, td spiffeid.TrustDomain, role Role) error {
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return fmt.Errorf("peer certificate is not an X.509-SVID: %w", err)
	}
	if id.TrustDomain() != td {
		return fmt.Errorf("peer is %s, outside trust domain %s", id, td)
	}
	if r, _, err := RoleOf(id); err != nil || r != role {
		return fmt.Errorf("peer presents %s, which is not a %s identity", id, role)
	}
	return nil
}
