package keyfile

import (
	"crypto"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCreateLoadAndNeverOverwrite(t *testing.T) {
	for _, alg := range []Alg{ECDSAP256, Ed25519} {
		path := filepath.Join(t.TempDir(), "k.key")
		k, created, err := LoadOrCreate(path, alg)
		if err != nil || !created {
			t.Fatalf("%s: create: %v %v", alg, created, err)
		}
		before, _ := os.ReadFile(path)
		k2, created, err := LoadOrCreate(path, alg)
		if err != nil || created {
			t.Fatalf("%s: second LoadOrCreate created=%v err=%v", alg, created, err)
		}
		after, _ := os.ReadFile(path)
		if string(before) != string(after) {
			t.Fatalf("%s: key file changed", alg)
		}
		if !publicEqual(k, k2) {
			t.Fatalf("%s: loaded a different key", alg)
		}
		if _, err := Create(path, alg); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
			t.Fatalf("%s: Create overwrote: %v", alg, err)
		}
	}
}

func publicEqual(a, b crypto.Signer) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	return a.Public().(eq).Equal(b.Public())
}

func TestLoadRefusesExposedOrBrokenKeys(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k.key")
	if _, err := Create(path, Ed25519); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("loaded a world-readable key: %v", err)
	}
	junk := filepath.Join(dir, "junk.key")
	os.WriteFile(junk, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
	if _, err := Load(junk); err == nil {
		t.Fatal("loaded junk")
	}
	if _, err := Load(filepath.Join(dir, "missing.key")); err == nil {
		t.Fatal("loaded a missing key")
	}
}
