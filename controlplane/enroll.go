package controlplane

import (
	"context"
	"crypto/x509"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/credential"
	"github.com/warden-run/warden/internal/keyfile"
)

// Enroll is the agent's side of enrolment: it generates a key locally (the
// private key never leaves this process), sends only a CSR with the one-time
// join token, and returns the resulting credential. roots are the trust
// anchors the control plane is verified against; want is the SPIFFE ID the
// token is expected to be for.
func Enroll(ctx context.Context, baseURL string, roots []*x509.Certificate, want spiffeid.ID, joinToken string) (*credential.Credential, error) {
	if joinToken == "" {
		return nil, fmt.Errorf("a join token is required for the first X.509-SVID")
	}
	c, err := NewAnonymousClient(baseURL, roots, want.TrustDomain())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	key, err := keyfile.Generate(keyfile.ECDSAP256)
	if err != nil {
		return nil, err
	}
	chain, issuedRoots, err := c.X509SVID(ctx, joinToken, key, want)
	if err != nil {
		return nil, err
	}
	return credential.New(key, chain, issuedRoots, credential.Meta{ControlPlane: baseURL})
}

// Renewer returns the credential.RenewFunc that renews over mTLS with the
// current SVID, keeping the key.
func Renewer(baseURL string) credential.RenewFunc {
	return func(ctx context.Context, cur *credential.Credential) (*credential.Credential, error) {
		if baseURL == "" {
			baseURL = cur.Meta.ControlPlane
		}
		c, err := NewClient(baseURL, cur)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		chain, roots, err := c.X509SVID(ctx, "", cur.Key, cur.ID)
		if err != nil {
			return nil, err
		}
		return credential.New(cur.Key, chain, roots, cur.Meta)
	}
}
