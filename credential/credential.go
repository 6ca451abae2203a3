// Package credential owns the files a workload keeps on its own side: its
// private key (which never leaves it), its X.509-SVID chain, the trust bundle
// it verifies peers with, and where its control plane is. It loads and saves
// them atomically and keeps them fresh with a renewing Source.
//
// credential never issues anything: renewal is a request to the control
// plane, passed in as a function.
package credential

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/internal/keyfile"
)

// File names inside a credential directory.
const (
	KeyFile    = "svid.key"   // PKCS#8 PEM private key, 0600
	CertFile   = "svid.pem"   // the X.509-SVID: leaf then intermediates
	BundleFile = "bundle.pem" // trust roots of the trust domain
	MetaFile   = "credential.json"
)

// Meta is what a credential directory records besides keys and certificates.
type Meta struct {
	SPIFFEID     string `json:"spiffe_id"`
	ControlPlane string `json:"control_plane,omitempty"` // https://host:port of the control plane
}

// Credential is a workload's key, its X.509-SVID and its trust bundle.
type Credential struct {
	Key    crypto.Signer
	Chain  []*x509.Certificate
	Roots  []*x509.Certificate
	Meta   Meta
	ID     spiffeid.ID
	bundle *x509bundle.Bundle
}

// New assembles a credential and checks that its parts belong together: the
// chain is a valid SVID under roots, for the key.
func New(key crypto.Signer, chain, roots []*x509.Certificate, meta Meta) (*Credential, error) {
	if len(chain) == 0 || len(roots) == 0 {
		return nil, errors.New("credential needs a certificate chain and trust roots")
	}
	id, err := x509svid.IDFromCert(chain[0])
	if err != nil {
		return nil, fmt.Errorf("certificate is not an X.509-SVID: %w", err)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pk, ok := chain[0].PublicKey.(equaler); !ok || !pk.Equal(key.Public()) {
		return nil, errors.New("certificate does not match the private key")
	}
	meta.SPIFFEID = id.String()
	return &Credential{Key: key, Chain: chain, Roots: roots, Meta: meta, ID: id,
		bundle: x509bundle.FromX509Authorities(id.TrustDomain(), roots)}, nil
}

// Bundle returns the trust bundle as a go-spiffe bundle.
func (c *Credential) Bundle() *x509bundle.Bundle { return c.bundle }

// TLSCertificate returns the credential as a TLS client/server certificate.
func (c *Credential) TLSCertificate() tls.Certificate {
	t := tls.Certificate{PrivateKey: c.Key, Leaf: c.Chain[0]}
	for _, cert := range c.Chain {
		t.Certificate = append(t.Certificate, cert.Raw)
	}
	return t
}

// SVID returns the credential as a go-spiffe X.509-SVID.
func (c *Credential) SVID() *x509svid.SVID {
	return &x509svid.SVID{ID: c.ID, Certificates: c.Chain, PrivateKey: c.Key}
}

// Load reads a credential directory.
func Load(dir string) (*Credential, error) {
	key, err := keyfile.Load(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, wrapMissing(dir, err)
	}
	chain, err := identity.LoadCerts(filepath.Join(dir, CertFile))
	if err != nil {
		return nil, wrapMissing(dir, err)
	}
	roots, err := identity.LoadCerts(filepath.Join(dir, BundleFile))
	if err != nil {
		return nil, wrapMissing(dir, err)
	}
	var meta Meta
	if b, err := os.ReadFile(filepath.Join(dir, MetaFile)); err == nil {
		if err := json.Unmarshal(b, &meta); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, MetaFile), err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	c, err := New(key, chain, roots, meta)
	if err != nil {
		return nil, fmt.Errorf("credential in %s: %w", dir, err)
	}
	return c, nil
}

func wrapMissing(dir string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no usable credential in %s: %w", dir, err)
	}
	return err
}

// Save writes the credential into dir (created 0700). The key is written only
// if dir holds none yet; an existing key must be the same key. Certificates
// are replaced atomically, so a reader sees the old or the new SVID, never a
// mix.
func (c *Credential) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating credential directory: %w", err)
	}
	keyPath := filepath.Join(dir, KeyFile)
	if old, err := keyfile.Load(keyPath); err == nil {
		type equaler interface{ Equal(crypto.PublicKey) bool }
		if !old.Public().(equaler).Equal(c.Key.Public()) {
			return fmt.Errorf("%s holds a different key; refusing to overwrite it", keyPath)
		}
	} else if errors.Is(err, fs.ErrNotExist) {
		if err := keyfile.Write(keyPath, c.Key); err != nil {
			return err
		}
	} else {
		return err
	}
	meta, err := json.MarshalIndent(c.Meta, "", "  ")
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{BundleFile, identity.EncodeCerts(c.Roots)},
		{MetaFile, append(meta, '\n')},
		{CertFile, identity.EncodeCerts(c.Chain)}, // last: its presence marks a complete directory
	} {
		if err := config.WriteFileAtomic(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
