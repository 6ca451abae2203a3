package identity

import (
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/internal/keyfile"
)

// CertSource issues, from the local CA, the TLS server certificate of one
// of Warden's own services (the control plane, a gateway): an X.509-SVID for
// id that also names the DNS names and IPs clients dial. It is kept in
// memory only and re-issued, with a fresh key, at half its lifetime.
type CertSource struct {
	ca  *CA
	id  spiffeid.ID
	dns []string
	ips []net.IP
	ttl time.Duration

	mu   sync.Mutex
	cert *tls.Certificate
}

// NewCertSource returns a certificate source for id. localhost, 127.0.0.1
// and ::1 are always included.
func NewCertSource(ca *CA, id spiffeid.ID, dns []string, ips []net.IP, ttl time.Duration) *CertSource {
	return &CertSource{ca: ca, id: id, ttl: ttl,
		dns: append([]string{"localhost"}, dns...),
		ips: append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, ips...)}
}

// ID returns the SPIFFE ID the certificates carry.
func (s *CertSource) ID() spiffeid.ID { return s.id }

// GetCertificate implements tls.Config.GetCertificate.
func (s *CertSource) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
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
	chain, err := s.ca.IssueServerCert(s.id, key.Public(), s.dns, s.ips, s.ttl, now)
	if err != nil {
		return nil, fmt.Errorf("issuing the certificate of %s: %w", s.id, err)
	}
	c := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	s.cert = c
	return c, nil
}

// ServiceName returns a name for one of Warden's own services on this host,
// usable as the last segment of its SPIFFE ID: the host name when it is a
// valid segment, otherwise "main".
func ServiceName(hostname string) string {
	if hostname == "" || ValidateName(hostname) != nil {
		return "main"
	}
	return hostname
}
