package credential

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/identity"
)

func testCA(t *testing.T) (*identity.CA, spiffeid.ID) {
	t.Helper()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	rk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ik, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	root, _ := identity.NewRoot(td, rk, now)
	inter, _ := identity.NewIntermediate(td, root, rk, ik, now)
	ca, err := identity.NewCA(td, root, inter, ik)
	if err != nil {
		t.Fatal(err)
	}
	return ca, spiffeid.RequireFromString("spiffe://example.org/agent/a")
}

func TestSaveLoadAndRenewKeepTheKey(t *testing.T) {
	ca, id := testCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	chain, _ := ca.IssueX509SVID(id, key.Public(), time.Hour, time.Now())
	c, err := New(key, chain, []*x509.Certificate{ca.Root()}, Meta{ControlPlane: "https://127.0.0.1:8443"})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "creds")
	if err := c.Save(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, KeyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode().Perm())
	}
	renewals := 0
	src, err := NewSource(dir, func(_ context.Context, cur *Credential) (*Credential, error) {
		renewals++
		next, err := ca.IssueX509SVID(cur.ID, cur.Key.Public(), time.Hour, time.Now())
		if err != nil {
			return nil, err
		}
		return New(cur.Key, next, cur.Roots, cur.Meta)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf := src.Current().Chain[0]
	if want := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2); !src.RenewAt().Equal(want) {
		t.Errorf("renews at %v, want half-life %v", src.RenewAt(), want)
	}
	if err := src.RenewNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	svid, _ := src.GetX509SVID()
	if svid.ID != id || renewals != 1 {
		t.Fatalf("svid %v, renewals %d", svid.ID, renewals)
	}
	again, err := Load(dir)
	if err != nil || again.Chain[0].SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Fatalf("renewal not saved: %v", err)
	}
	if _, err := src.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString("other.org")); err == nil {
		t.Error("served a bundle for another trust domain")
	}

	// A failed renewal keeps the current SVID and says why.
	bad, _ := NewSource(dir, func(context.Context, *Credential) (*Credential, error) { return nil, errors.New("control plane down") }, nil)
	if err := bad.RenewNow(context.Background()); err == nil || !strings.Contains(err.Error(), "control plane down") {
		t.Fatalf("err = %v", err)
	}

	// Saving a credential with another key into the directory is refused.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	oc, _ := ca.IssueX509SVID(id, other.Public(), time.Hour, time.Now())
	c2, _ := New(other, oc, []*x509.Certificate{ca.Root()}, Meta{})
	if err := c2.Save(dir); err == nil || !strings.Contains(err.Error(), "different key") {
		t.Fatalf("overwrote the key: %v", err)
	}
}

func TestNewRefusesMismatchedParts(t *testing.T) {
	ca, id := testCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	chain, _ := ca.IssueX509SVID(id, key.Public(), time.Hour, time.Now())
	if _, err := New(other, chain, []*x509.Certificate{ca.Root()}, Meta{}); err == nil {
		t.Error("accepted a certificate for another key")
	}
	if _, err := New(key, nil, nil, Meta{}); err == nil {
		t.Error("accepted an empty credential")
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no usable credential") {
		t.Errorf("empty directory: %v", err)
	}
}
