package credential

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// RenewFunc obtains a new SVID for the current credential's key from the
// control plane (controlplane.Renewer provides one).
type RenewFunc func(ctx context.Context, current *Credential) (*Credential, error)

// Source holds a workload's current credential and renews it at half its
// lifetime, saving each renewal to its directory. It implements go-spiffe's
// x509svid.Source and x509bundle.Source, so it plugs into go-spiffe's
// tlsconfig helpers, and GetClientCertificate for plain crypto/tls.
type Source struct {
	dir   string
	renew RenewFunc
	log   *slog.Logger
	now   func() time.Time

	mu  sync.RWMutex
	cur *Credential
}

var (
	_ x509svid.Source   = (*Source)(nil)
	_ x509bundle.Source = (*Source)(nil)
)

// NewSource loads the credential in dir.
func NewSource(dir string, renew RenewFunc, log *slog.Logger) (*Source, error) {
	c, err := Load(dir)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{dir: dir, renew: renew, log: log, now: time.Now, cur: c}, nil
}

// Current returns the credential in use.
func (s *Source) Current() *Credential {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur
}

// GetX509SVID implements x509svid.Source.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) { return s.Current().SVID(), nil }

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (s *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	c := s.Current()
	if td != c.ID.TrustDomain() {
		return nil, fmt.Errorf("no bundle for trust domain %s (this credential is in %s)", td, c.ID.TrustDomain())
	}
	return c.Bundle(), nil
}

// GetClientCertificate is a tls.Config.GetClientCertificate that always
// presents the current SVID.
func (s *Source) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c := s.Current().TLSCertificate()
	return &c, nil
}

// RenewAt returns when the current SVID should be renewed: half-way through
// its lifetime.
func (s *Source) RenewAt() time.Time {
	leaf := s.Current().Chain[0]
	return leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
}

// RenewNow renews the SVID once and saves it.
func (s *Source) RenewNow(ctx context.Context) error {
	next, err := s.renew(ctx, s.Current())
	if err != nil {
		return fmt.Errorf("renewing X.509-SVID: %w", err)
	}
	if err := next.Save(s.dir); err != nil {
		return fmt.Errorf("saving renewed X.509-SVID: %w", err)
	}
	s.mu.Lock()
	s.cur = next
	s.mu.Unlock()
	s.log.Info("renewed X.509-SVID", "id", next.ID, "expires", next.Chain[0].NotAfter)
	return nil
}

// Run renews at half-life until ctx ends. A failed renewal is retried with
// backoff; the current SVID stays in use until it expires.
func (s *Source) Run(ctx context.Context) error {
	backoff := time.Second
	for {
		wait := s.RenewAt().Sub(s.now())
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		if err := s.RenewNow(ctx); err != nil {
			s.log.Error("X.509-SVID renewal failed", "err", err, "retry_in", backoff, "expires", s.Current().Chain[0].NotAfter)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Minute)
			continue
		}
		backoff = time.Second
	}
}
