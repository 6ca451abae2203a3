package identity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Validity of the CA certificates Warden creates.
const (
	RootValidity         = 10 * 365 * 24 * time.Hour
	IntermediateValidity = 365 * 24 * time.Hour
	// clockSkew backdates NotBefore so that a verifier whose clock is a little
	// behind does not reject a certificate it was just handed.
	clockSkew = 30 * time.Second
)

// CA is Warden's X.509 certificate authority for one trust domain: a root
// that signs only the intermediate (its key may be absent, kept offline) and
// an online intermediate that signs SVIDs.
type CA struct {
	td       spiffeid.TrustDomain
	root     *x509.Certificate
	inter    *x509.Certificate
	interKey crypto.Signer
}

// NewCA assembles a CA from its certificates and the intermediate's key,
// checking that they belong together.
func NewCA(td spiffeid.TrustDomain, root, inter *x509.Certificate, interKey crypto.Signer) (*CA, error) {
	if err := inter.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("intermediate certificate is not signed by the root: %w", err)
	}
	if !publicKeysEqual(inter.PublicKey, interKey.Public()) {
		return nil, errors.New("intermediate key does not match the intermediate certificate")
	}
	for _, c := range []*x509.Certificate{root, inter} {
		if len(c.URIs) != 1 || c.URIs[0].String() != td.IDString() {
			return nil, fmt.Errorf("CA certificate %q is not for trust domain %s", c.Subject.CommonName, td)
		}
	}
	return &CA{td: td, root: root, inter: inter, interKey: interKey}, nil
}

// TrustDomain returns the CA's trust domain.
func (ca *CA) TrustDomain() spiffeid.TrustDomain { return ca.td }

// Root returns the root certificate: the trust anchor verifiers pin.
func (ca *CA) Root() *x509.Certificate { return ca.root }

// Intermediate returns the online signing certificate.
func (ca *CA) Intermediate() *x509.Certificate { return ca.inter }

// NewRoot creates a self-signed root certificate for the trust domain.
func NewRoot(td spiffeid.TrustDomain, key crypto.Signer, now time.Time) (*x509.Certificate, error) {
	tmpl, err := caTemplate(td, "Warden root CA", now, RootValidity)
	if err != nil {
		return nil, err
	}
	tmpl.MaxPathLen = 1
	return sign(tmpl, tmpl, key.Public(), key)
}

// NewIntermediate creates an intermediate signed by the root. Its lifetime
// never outlasts the root's.
func NewIntermediate(td spiffeid.TrustDomain, root *x509.Certificate, rootKey crypto.Signer, key crypto.Signer, now time.Time) (*x509.Certificate, error) {
	if !publicKeysEqual(root.PublicKey, rootKey.Public()) {
		return nil, errors.New("root key does not match the root certificate")
	}
	tmpl, err := caTemplate(td, "Warden intermediate CA", now, IntermediateValidity)
	if err != nil {
		return nil, err
	}
	tmpl.MaxPathLen = 0
	tmpl.MaxPathLenZero = true
	if tmpl.NotAfter.After(root.NotAfter) {
		tmpl.NotAfter = root.NotAfter
	}
	return sign(tmpl, root, key.Public(), rootKey)
}

func caTemplate(td spiffeid.TrustDomain, cn string, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(td.IDString())
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Warden"}, CommonName: cn + " " + td.Name()},
		URIs:                  []*url.URL{u},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil
}

// leafOptions are what differs between the leaf certificates the CA signs.
type leafOptions struct {
	id    spiffeid.ID
	pub   crypto.PublicKey
	ttl   time.Duration
	now   time.Time
	dns   []string
	ips   []net.IP
	isSrv bool
}

// IssueX509SVID signs an X.509-SVID for id over the given public key and
// returns the chain: the leaf, then the intermediate. The lifetime is cut to
// the intermediate's own.
func (ca *CA) IssueX509SVID(id spiffeid.ID, pub crypto.PublicKey, ttl time.Duration, now time.Time) ([]*x509.Certificate, error) {
	return ca.issueLeaf(leafOptions{id: id, pub: pub, ttl: ttl, now: now})
}

// IssueServerCert signs a TLS server certificate that is also an X.509-SVID
// (one URI SAN: id) with the given DNS names and IP addresses.
func (ca *CA) IssueServerCert(id spiffeid.ID, pub crypto.PublicKey, dns []string, ips []net.IP, ttl time.Duration, now time.Time) ([]*x509.Certificate, error) {
	return ca.issueLeaf(leafOptions{id: id, pub: pub, ttl: ttl, now: now, dns: dns, ips: ips, isSrv: true})
}

func (ca *CA) issueLeaf(o leafOptions) ([]*x509.Certificate, error) {
	if o.id.TrustDomain() != ca.td {
		return nil, fmt.Errorf("cannot issue for %s: this CA serves trust domain %s", o.id, ca.td)
	}
	if err := checkPublicKey(o.pub); err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	_, name, _ := RoleOf(o.id)
	u, _ := url.Parse(o.id.String())
	notAfter := o.now.Add(o.ttl)
	if notAfter.After(ca.inter.NotAfter) {
		notAfter = ca.inter.NotAfter
	}
	if !notAfter.After(o.now) {
		return nil, fmt.Errorf("the intermediate CA certificate expired at %s: rotate it with `warden init`", ca.inter.NotAfter.Format(time.RFC3339))
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Warden"}, CommonName: name},
		URIs:                  []*url.URL{u},
		DNSNames:              o.dns,
		IPAddresses:           o.ips,
		NotBefore:             o.now.Add(-clockSkew),
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	if _, ok := o.pub.(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	leaf, err := sign(tmpl, ca.inter, o.pub, ca.interKey)
	if err != nil {
		return nil, err
	}
	return []*x509.Certificate{leaf, ca.inter}, nil
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil // never zero
}

// checkPublicKey refuses keys too weak to hold an identity.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if bits := k.Curve.Params().BitSize; bits < 256 {
			return fmt.Errorf("ECDSA key on a %d-bit curve is too weak: use P-256 or stronger", bits)
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits is too weak: use at least 2048", k.N.BitLen())
		}
	default:
		return fmt.Errorf("unsupported public key type %T: use ECDSA P-256, Ed25519 or RSA 2048+", pub)
	}
	return nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}

// Fingerprint returns the SHA-256 fingerprint of a certificate, "sha256:<hex>".
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// EncodeCerts renders certificates as concatenated PEM blocks.
func EncodeCerts(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// ParseCerts decodes concatenated PEM certificates. Anything else in the
// input is an error, not skipped.
func ParseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := bytes.TrimSpace(b)
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("not PEM: expected -----BEGIN CERTIFICATE-----")
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q: expected CERTIFICATE", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
		rest = bytes.TrimSpace(rest)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate found")
	}
	return out, nil
}

// LoadCerts reads a PEM certificate file.
func LoadCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading certificates: %w", err)
	}
	certs, err := ParseCerts(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs, nil
}
