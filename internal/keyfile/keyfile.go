// Package keyfile reads and writes private keys as PKCS#8 PEM files that only
// their owner may read. It never overwrites an existing key: losing a key is
// unrecoverable, so replacing one is always an explicit, separate act.
package keyfile

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Alg is a key algorithm.
type Alg string

// Supported algorithms.
const (
	ECDSAP256 Alg = "ecdsa-p256"
	Ed25519   Alg = "ed25519"
)

// Generate returns a new private key.
func Generate(alg Alg) (crypto.Signer, error) {
	switch alg {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("unsupported key algorithm %q", alg)
}

// Marshal encodes a private key as PKCS#8 PEM.
func Marshal(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Parse decodes a PKCS#8 PEM private key.
func Parse(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM \"PRIVATE KEY\" block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", k)
	}
	return s, nil
}

// Create generates a key and writes it to path with mode 0600, failing if a
// file already exists there.
func Create(path string, alg Alg) (crypto.Signer, error) {
	k, err := Generate(alg)
	if err != nil {
		return nil, err
	}
	if err := Write(path, k); err != nil {
		return nil, err
	}
	return k, nil
}

// Write stores k at path with mode 0600, failing if a file already exists.
func Write(path string, k crypto.Signer) error {
	b, err := Marshal(k)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("refusing to overwrite existing key %s", path)
		}
		return fmt.Errorf("writing key %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("writing key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("writing key %s: %w", path, err)
	}
	return f.Close()
}

// Load reads the key at path. It refuses a key file that group or others may
// read or write: a key that has been exposed must be replaced, not used.
func Load(path string) (crypto.Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key %s has mode %v: group and others must have no access (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	k, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	return k, nil
}

// LoadOrCreate loads the key at path, creating it when no file exists.
// created reports which happened.
func LoadOrCreate(path string, alg Alg) (k crypto.Signer, created bool, err error) {
	k, err = Load(path)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	k, err = Create(path, alg)
	return k, err == nil, err
}
