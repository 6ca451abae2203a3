package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/events"
)

// JWTSVIDType is the typ header of a JWT-SVID, as the JWT-SVID standard
// requires. Every other token kind Warden issues has its own typ.
const JWTSVIDType = "JWT"

// jwtSVIDAlgs are the algorithms a JWT-SVID may be signed with. Warden signs
// with ES256 only; "none" and everything else are refused before parsing.
var jwtSVIDAlgs = []jose.SignatureAlgorithm{jose.ES256}

// JWTSVIDClaims are the claims of a Warden JWT-SVID.
type JWTSVIDClaims struct {
	jwt.Claims
	Attestation *Attestation `json:"attestation,omitempty"`
}

// JWTAuthority signs JWT-SVIDs with the dedicated JWT-SVID key.
type JWTAuthority struct {
	td     spiffeid.TrustDomain
	key    crypto.Signer
	kid    string
	signer jose.Signer
}

// NewJWTAuthority wraps the JWT-SVID signing key (ECDSA P-256). The key id
// is the key's RFC 7638 thumbprint.
func NewJWTAuthority(td spiffeid.TrustDomain, key crypto.Signer) (*JWTAuthority, error) {
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("JWT-SVID key must be ECDSA P-256, got %T", key)
	}
	kid, err := Thumbprint(key.Public())
	if err != nil {
		return nil, err
	}
	opts := (&jose.SignerOptions{}).WithType(JWTSVIDType).WithHeader(jose.HeaderKey("kid"), kid)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		return nil, fmt.Errorf("creating JWT-SVID signer: %w", err)
	}
	return &JWTAuthority{td: td, key: key, kid: kid, signer: s}, nil
}

// KeyID returns the kid of the signing key.
func (a *JWTAuthority) KeyID() string { return a.kid }

// Public returns the verification key.
func (a *JWTAuthority) Public() crypto.PublicKey { return a.key.Public() }

// mint signs a JWT-SVID for id. It returns the token and its jti.
func (a *JWTAuthority) mint(id spiffeid.ID, audience []string, ttl time.Duration, now time.Time, att *Attestation) (string, string, error) {
	c := JWTSVIDClaims{
		Claims: jwt.Claims{
			Issuer:   a.td.IDString(),
			Subject:  id.String(),
			Audience: jwt.Audience(audience),
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(now.Add(ttl)),
			ID:       events.NewID(),
		},
		Attestation: att,
	}
	tok, err := jwt.Signed(a.signer).Claims(c).Serialize()
	if err != nil {
		return "", "", fmt.Errorf("signing JWT-SVID: %w", err)
	}
	return tok, c.ID, nil
}

func joseAlg(s string) jose.SignatureAlgorithm { return jose.SignatureAlgorithm(s) }
