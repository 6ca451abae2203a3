package config

import (
	"os"
	"path/filepath"
)

// EnvHome names the environment variable that locates the data directory.
const EnvHome = "WARDEN_HOME"

// DefaultDir returns the data directory to use when none is given:
// $WARDEN_HOME if set, otherwise ./.warden.
func DefaultDir() string {
	if d := os.Getenv(EnvHome); d != "" {
		return d
	}
	return ".warden"
}

// Dir is a Warden data directory. Its layout:
//
//	warden.yaml       configuration
//	warden.db         SQLite database (WAL)
//	events.jsonl      event record (until the audit log replaces it)
//	keys/             one private key per purpose, 0600, in a 0700 directory
//	admin/            the operator's X.509-SVID (key, chain, trust bundle)
type Dir string

// Config is the path of warden.yaml.
func (d Dir) Config() string { return filepath.Join(string(d), FileName) }

// Database is the path of the SQLite database.
func (d Dir) Database() string { return filepath.Join(string(d), "warden.db") }

// Keys is the directory of private keys.
func (d Dir) Keys() string { return filepath.Join(string(d), "keys") }

// Admin is the directory holding the operator credential `warden init` issues.
func (d Dir) Admin() string { return filepath.Join(string(d), "admin") }

// Path resolves a path from the configuration relative to the data directory.
func (d Dir) Path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(string(d), p)
}

// KeyPurpose names one signing key. Warden keeps one key per purpose so that
// a token of one kind can never verify as another and a leaked key exposes
// one function only.
type KeyPurpose string

// Key purposes and their algorithms (see Keys).
const (
	KeyX509Root         KeyPurpose = "x509-root"         // ECDSA P-256: signs the intermediate only; may be kept offline
	KeyX509Intermediate KeyPurpose = "x509-intermediate" // ECDSA P-256: signs X.509-SVIDs
	KeyJWTSVID          KeyPurpose = "jwt-svid"          // ECDSA P-256 (ES256): signs JWT-SVIDs
	KeyGrant            KeyPurpose = "grant"             // Ed25519 (EdDSA): signs task grants
	KeyCheckpoint       KeyPurpose = "checkpoint"        // Ed25519: signs audit checkpoints
	KeyMemory           KeyPurpose = "memory"            // Ed25519: signs memory entries
)

// KeyPurposes lists every purpose `warden init` creates a key for.
var KeyPurposes = []KeyPurpose{KeyX509Root, KeyX509Intermediate, KeyJWTSVID, KeyGrant, KeyCheckpoint, KeyMemory}

// KeyFile is the private key file of a purpose.
func (d Dir) KeyFile(p KeyPurpose) string { return filepath.Join(d.Keys(), string(p)+".key") }

// CertFile is the certificate file of a purpose (the CA's root and intermediate).
func (d Dir) CertFile(p KeyPurpose) string { return filepath.Join(d.Keys(), string(p)+".crt") }
