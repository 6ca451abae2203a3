package supply

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/blake2b"

	"github.com/warden-run/warden/config"
)

// SignatureCheck verifies a server's signature before launch.
type SignatureCheck interface {
	Verify(id *Identity) error
}

// Minisign checks a minisign signature (Ed25519; prehashed with BLAKE2b-512
// or, in the legacy form, over the file itself) of one file the server
// runs, by a pinned public key.
type Minisign struct {
	// PublicKey is the key as minisign prints it (base64, optionally after
	// an "untrusted comment:" line).
	PublicKey string
	// Signature is the path of the .minisig file.
	Signature string
	// Artifact is the signed file; empty means the server's command.
	Artifact string
}

// maxSignatureBytes bounds a signature file.
const maxSignatureBytes = 1 << 20

type minisignKey struct {
	id  [8]byte
	key ed25519.PublicKey
}

func parseMinisignKey(s string) (*minisignKey, error) {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(lines[len(lines)-1]))
	if err != nil || len(b) != 42 || b[0] != 'E' || b[1] != 'd' {
		return nil, errors.New("minisign public key: want base64 of \"Ed\", an 8-byte key id and a 32-byte Ed25519 key")
	}
	k := &minisignKey{key: ed25519.PublicKey(b[10:42])}
	copy(k.id[:], b[2:10])
	return k, nil
}

// Verify implements SignatureCheck.
func (m Minisign) Verify(id *Identity) error {
	k, err := parseMinisignKey(m.PublicKey)
	if err != nil {
		return err
	}
	art := m.Artifact
	if art == "" {
		if id == nil || len(id.Files) == 0 {
			return errors.New("minisign: no artifact to verify")
		}
		art = id.Files[0].Path
	}
	sig, err := os.ReadFile(m.Signature)
	if err != nil {
		return fmt.Errorf("minisign: reading the signature: %w", err)
	}
	if len(sig) > maxSignatureBytes {
		return errors.New("minisign: signature file too large")
	}
	f, err := os.Open(art)
	if err != nil {
		return fmt.Errorf("minisign: reading %s: %w", art, err)
	}
	defer f.Close()
	if err := verifyMinisign(k, sig, f); err != nil {
		return fmt.Errorf("minisign signature of %s: %w", art, err)
	}
	return nil
}

// verifyMinisign checks a minisign signature file over the content of r.
func verifyMinisign(k *minisignKey, sigFile []byte, r io.Reader) error {
	lines := strings.Split(strings.ReplaceAll(string(sigFile), "\r\n", "\n"), "\n")
	if len(lines) < 4 || !strings.HasPrefix(lines[0], "untrusted comment:") || !strings.HasPrefix(lines[2], "trusted comment: ") {
		return errors.New("malformed signature file (want four lines: untrusted comment, signature, trusted comment, global signature)")
	}
	sb, err := base64.StdEncoding.DecodeString(strings.TrimSpace(lines[1]))
	if err != nil || len(sb) != 74 {
		return errors.New("malformed signature line")
	}
	alg := string(sb[:2])
	if !bytes.Equal(sb[2:10], k.id[:]) {
		return errors.New("signed by another key (key ids differ)")
	}
	var msg []byte
	switch alg {
	case "ED":
		h, _ := blake2b.New512(nil)
		if _, err := io.Copy(h, r); err != nil {
			return err
		}
		msg = h.Sum(nil)
	case "Ed":
		if msg, err = io.ReadAll(io.LimitReader(r, maxPinnedFileBytes)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown signature algorithm %q", alg)
	}
	if !ed25519.Verify(k.key, msg, sb[10:74]) {
		return errors.New("signature does not verify")
	}
	gb, err := base64.StdEncoding.DecodeString(strings.TrimSpace(lines[3]))
	if err != nil || len(gb) != 64 {
		return errors.New("malformed global signature")
	}
	trusted := strings.TrimPrefix(lines[2], "trusted comment: ")
	if !ed25519.Verify(k.key, append(append([]byte(nil), sb[10:74]...), trusted...), gb) {
		return errors.New("the trusted comment's signature does not verify")
	}
	return nil
}

// NewSignatureCheck builds the check a configuration names; relative paths
// are in the data directory.
func NewSignatureCheck(dir config.Dir, c config.SupplySignature) (SignatureCheck, error) {
	art := c.Artifact
	if art != "" && art != "npm" {
		art = dir.Path(art)
	}
	switch {
	case c.Minisign != nil:
		if _, err := parseMinisignKey(c.Minisign.PublicKey); err != nil {
			return nil, err
		}
		return Minisign{PublicKey: c.Minisign.PublicKey, Signature: dir.Path(c.Minisign.Signature), Artifact: art}, nil
	case c.Sigstore != nil:
		return newSigstoreCheck(dir, c.Sigstore, art)
	}
	return nil, errors.New("no signature configured")
}
