package supply

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/warden-run/warden/config"
)

// Sigstore checks a Sigstore bundle offline: against a trusted root read
// from a file (pinned by the operator; no TUF refresh, no network), with
// the signer's certificate identity and issuer, over one file the server
// runs or, for artifact "npm", over the pinned npm package's tarball
// digest (npm provenance attestations name it as their subject).
type Sigstore struct {
	Trusted  root.TrustedMaterial
	Entity   verify.SignedEntity
	Identity verify.CertificateIdentity
	// Artifact is the signed file; empty means the server's command; "npm"
	// means the npm tarball's SHA-512 from the lock.
	Artifact string
	// WithoutSCT drops the requirement of a signed certificate timestamp
	// (a private Sigstore whose certificates carry none); by default one
	// is required whenever the trusted root lists CT logs.
	WithoutSCT bool
}

func newSigstoreCheck(dir config.Dir, c *config.SupplySigstore, art string) (SignatureCheck, error) {
	tr, err := root.NewTrustedRootFromPath(dir.Path(c.TrustedRoot))
	if err != nil {
		return nil, fmt.Errorf("sigstore trusted root %s: %w", c.TrustedRoot, err)
	}
	b, err := bundle.LoadJSONFromPath(dir.Path(c.Bundle))
	if err != nil {
		return nil, fmt.Errorf("sigstore bundle %s: %w", c.Bundle, err)
	}
	id, err := SigstoreIdentity(c.Identity, c.Issuer)
	if err != nil {
		return nil, err
	}
	return Sigstore{Trusted: tr, Entity: b, Identity: id, Artifact: art}, nil
}

// SigstoreIdentity is the certificate identity a bundle must carry: the
// subject alternative name (a regular expression when it starts with "^")
// and the OIDC issuer.
func SigstoreIdentity(san, issuer string) (verify.CertificateIdentity, error) {
	value, re := san, ""
	if strings.HasPrefix(san, "^") {
		value, re = "", san
	}
	id, err := verify.NewShortCertificateIdentity(issuer, "", value, re)
	if err != nil {
		return verify.CertificateIdentity{}, fmt.Errorf("sigstore identity: %w", err)
	}
	return id, nil
}

// Verify implements SignatureCheck: a transparency-log entry and an
// observed timestamp are required, and signed certificate timestamps when
// the trusted root lists certificate transparency logs.
func (s Sigstore) Verify(id *Identity) error {
	if s.Trusted == nil || s.Entity == nil {
		return errors.New("sigstore: no trusted root or bundle")
	}
	opts := []verify.VerifierOption{verify.WithTransparencyLog(1), verify.WithObserverTimestamps(1)}
	if len(s.Trusted.CTLogs()) > 0 && !s.WithoutSCT {
		opts = append(opts, verify.WithSignedCertificateTimestamps(1))
	}
	v, err := verify.NewVerifier(s.Trusted, opts...)
	if err != nil {
		return fmt.Errorf("sigstore: %w", err)
	}
	var art verify.ArtifactPolicyOption
	what := s.Artifact
	switch {
	case s.Artifact == "npm":
		if id == nil || id.NPM == nil {
			return errors.New("sigstore: artifact npm, but the server runs no pinned npm package")
		}
		alg, b64, ok := strings.Cut(id.NPM.Integrity, "-")
		if !ok || alg != "sha512" {
			return fmt.Errorf("sigstore: the npm package's integrity %q is not a SHA-512 digest", id.NPM.Integrity)
		}
		d, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return fmt.Errorf("sigstore: the npm package's integrity: %w", err)
		}
		art = verify.WithArtifactDigest("sha512", d)
		what = id.NPM.Name + "@" + id.NPM.Version + " (tarball " + shortIntegrity(id.NPM.Integrity) + ")"
	default:
		if what == "" {
			if id == nil || len(id.Files) == 0 {
				return errors.New("sigstore: no artifact to verify")
			}
			what = id.Files[0].Path
		}
		f, err := os.Open(what)
		if err != nil {
			return fmt.Errorf("sigstore: %w", err)
		}
		defer f.Close()
		art = verify.WithArtifact(f)
	}
	if _, err := v.Verify(s.Entity, verify.NewPolicy(art, verify.WithCertificateIdentity(s.Identity))); err != nil {
		return fmt.Errorf("sigstore signature of %s: %w", what, err)
	}
	return nil
}
