package identity

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// MaxCSRSize bounds a certificate signing request; real ones are under 1 KiB.
const MaxCSRSize = 16 << 10

// ParseCSR decodes a certificate signing request (PEM or DER) sent by a
// workload asking to be want, and checks it: its signature proves possession
// of the key, the key is strong enough, and it asks for no SPIFFE ID other
// than want. Warden sets every field of the certificate itself; only the
// public key is taken from the request.
func ParseCSR(b []byte, want spiffeid.ID) (*x509.CertificateRequest, error) {
	if len(b) == 0 {
		return nil, errorf(CodeCSRInvalid, "certificate signing request is empty")
	}
	if len(b) > MaxCSRSize {
		return nil, errorf(CodeCSRInvalid, "certificate signing request is %d bytes; at most %d", len(b), MaxCSRSize)
	}
	der := b
	if block, _ := pem.Decode(b); block != nil {
		if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
			return nil, errorf(CodeCSRInvalid, "PEM block is %q, want CERTIFICATE REQUEST", block.Type)
		}
		der = block.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, wrapErr(CodeCSRInvalid, err, "certificate signing request is malformed")
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, wrapErr(CodeCSRInvalid, err, "certificate signing request signature does not verify (the requester must hold the private key)")
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, wrapErr(CodeCSRInvalid, err, "certificate signing request key refused")
	}
	switch len(csr.URIs) {
	case 0:
	case 1:
		if csr.URIs[0].String() != want.String() {
			return nil, errorf(CodeCSRWrongID, "certificate signing request asks for %s, but this request may only be for %s", csr.URIs[0], want)
		}
	default:
		return nil, errorf(CodeCSRWrongID, "certificate signing request asks for %d URI SANs; an SVID has exactly one, %s", len(csr.URIs), want)
	}
	return csr, nil
}

// Thumbprint returns the RFC 7638 JWK thumbprint (SHA-256, base64url) of a
// public key: the "jkt" a task grant is bound to. It depends only on the key,
// so it survives certificate renewal.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("computing key thumbprint: %w", err)
	}
	return b64url(sum), nil
}
