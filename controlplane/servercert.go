package controlplane

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/internal/keyfile"
)

// serverCertTTL is the lifetime of the control plane's own certificate; it
// is re-issued in memory at half its life and never written to disk.
const serverCertTTL = 24 * time.Hour

// serverCert issues and renews the control plane's TLS certificate, an
// X.509-SVID of role controlplane with localhost names for hostname checks.
type serverCert struct {
	ca   *identity.CA
	dns  []string
	ips  []net.IP
	mu   sync.Mutex
	cert *tls.Certificate
}

func newServerCert(ca *identity.CA, names []string, ips []net.IP) *serverCert {
	return &serverCert{ca: ca,
		dns: append([]string{"localhost"}, names...),
		ips: append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, ips...)}
}

// ControlPlaneID is the SPIFFE ID of the control plane's server certificate.
func ControlPlaneID(td spiffeid.TrustDomain) spiffeid.ID {
	host, err := os.Hostname()
	if err != nil || identity.ValidateName(host) != nil {
		host = "main"
	}
	id, _ := identity.NewID(td, identity.RoleControlPlane, host)
	return id
}

func (s *serverCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.cert != nil && now.Before(s.cert.Leaf.NotBefore.Add(s.cert.Leaf.NotAfter.Sub(s.cert.Leaf.NotBefore)/2)) {
		return s.cert, nil
	}
	key, err := keyfile.Generate(keyfile.ECDSAP256)
	if err != nil {
		return nil, err
	}
	chain, err := s.ca.IssueServerCert(ControlPlaneID(s.ca.TrustDomain()), key.Public(), s.dns, s.ips, serverCertTTL, now)
	if err != nil {
		return nil, fmt.Errorf("issuing the control plane's certificate: %w", err)
	}
	c := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	s.cert = c
	return c, nil
}
