package grant

import (
	"crypto/sha256"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/internal/jwsheader"
)

// DPoPType is the typ header of a DPoP proof (RFC 9449).
const DPoPType = "dpop+jwt"

var dpopAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.EdDSA}

// DPoPVerifier checks DPoP proofs (RFC 9449): the proof's signature by the
// key in its header, htm and htu against the request, iat within a window,
// ath against the grant it accompanies, and jti against a replay cache.
type DPoPVerifier struct {
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time // jti -> when it may be forgotten
}

// maxDPoPSeen bounds the replay cache. When it is full of unexpired jtis the
// verifier refuses new proofs (fail closed) rather than forget one.
const maxDPoPSeen = 1 << 20

// NewDPoPVerifier returns a verifier accepting proofs issued within window
// of now.
func NewDPoPVerifier(window time.Duration, now func() time.Time) *DPoPVerifier {
	if now == nil {
		now = time.Now
	}
	return &DPoPVerifier{window: window, now: now, seen: make(map[string]time.Time)}
}

type dpopClaims struct {
	JTI string `json:"jti"`
	HTM string `json:"htm"`
	HTU string `json:"htu"`
	IAT int64  `json:"iat"`
	ATH string `json:"ath"`
}

// Verify checks proof for a request with method and URL carrying the grant
// token, and returns the thumbprint of the key that signed it.
func (d *DPoPVerifier) Verify(proof, method, rawURL, token string) (string, error) {
	if proof == "" {
		return "", errorf(CodeBindingUnproven, "no DPoP proof: a JWT-SVID is a bearer token, so possession of the grant's key must be proven with DPoP (or use mTLS)")
	}
	hdr, err := jwsheader.Parse(proof)
	if err != nil {
		return "", wrapErr(CodeDPoPInvalid, err, "DPoP proof is malformed")
	}
	if hdr.Typ != DPoPType {
		return "", errorf(CodeDPoPInvalid, "DPoP proof has typ %q, want %q", hdr.Typ, DPoPType)
	}
	if !slices.Contains(dpopAlgs, jose.SignatureAlgorithm(hdr.Alg)) {
		return "", errorf(CodeDPoPInvalid, "DPoP proof algorithm %q is not allowed", hdr.Alg)
	}
	jws, err := jose.ParseSigned(proof, dpopAlgs)
	if err != nil {
		return "", wrapErr(CodeDPoPInvalid, err, "DPoP proof is malformed")
	}
	jwk := jws.Signatures[0].Header.JSONWebKey
	if jwk == nil || !jwk.IsPublic() || !jwk.Valid() {
		return "", errorf(CodeDPoPInvalid, "DPoP proof header must carry the public key (jwk)")
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return "", wrapErr(CodeDPoPInvalid, err, "DPoP proof signature does not verify")
	}
	var c dpopClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", wrapErr(CodeDPoPInvalid, err, "DPoP proof claims are malformed")
	}
	if c.JTI == "" || len(c.JTI) > 256 {
		return "", errorf(CodeDPoPInvalid, "DPoP proof jti must be 1 to 256 characters")
	}
	if c.HTM != method {
		return "", errorf(CodeDPoPInvalid, "DPoP proof is for method %q, not %q", c.HTM, method)
	}
	want, err1 := normaliseHTU(rawURL)
	got, err2 := normaliseHTU(c.HTU)
	if err1 != nil || err2 != nil || got != want {
		return "", errorf(CodeDPoPInvalid, "DPoP proof is for %q, not %q", c.HTU, rawURL)
	}
	now := d.now()
	iat := time.Unix(c.IAT, 0)
	if iat.Before(now.Add(-d.window)) || iat.After(now.Add(clockSkew)) {
		return "", errorf(CodeDPoPInvalid, "DPoP proof was issued at %s, outside the accepted window of %v", iat.UTC().Format(time.RFC3339), d.window)
	}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		if c.ATH != b64(sum[:]) {
			return "", errorf(CodeDPoPInvalid, "DPoP proof's ath does not match the grant it accompanies")
		}
	}
	jkt, err := identity.Thumbprint(jwk.Key)
	if err != nil {
		return "", wrapErr(CodeDPoPInvalid, err, "DPoP proof key")
	}
	if err := d.remember(jkt+"|"+c.JTI, iat.Add(d.window+clockSkew), now); err != nil {
		return "", err
	}
	return jkt, nil
}

func (d *DPoPVerifier) remember(key string, until, now time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if exp, ok := d.seen[key]; ok && now.Before(exp) {
		return errorf(CodeDPoPReplayed, "DPoP proof was already used: every request needs a fresh proof")
	}
	if len(d.seen) >= maxDPoPSeen {
		for k, exp := range d.seen {
			if !now.Before(exp) {
				delete(d.seen, k)
			}
		}
		if len(d.seen) >= maxDPoPSeen {
			return errorf(CodeDPoPInvalid, "DPoP replay cache is full; refusing proofs until it drains")
		}
	}
	d.seen[key] = until
	return nil
}

// normaliseHTU reduces a URL to scheme://host[:port]/path, lowercased where
// case does not matter, without query or fragment (RFC 9449 section 4.3).
func normaliseHTU(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if scheme == "https" {
		host = strings.TrimSuffix(host, ":443")
	} else if scheme == "http" {
		host = strings.TrimSuffix(host, ":80")
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	return scheme + "://" + host + p, nil
}
