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
