package supply

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"golang.org/x/crypto/blake2b"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/gateway"
)

// minisignFiles writes a key pair's public key line and a signature file
// (prehashed "ED", or legacy "Ed") over data, in minisign's format.
func minisignFiles(t *testing.T, data []byte, prehash bool) (pub string, sig []byte, priv ed25519.PrivateKey, keyID []byte) {
	t.Helper()
	pk, sk, _ := ed25519.GenerateKey(rand.Reader)
	keyID = []byte("12345678")
	pub = base64.StdEncoding.EncodeToString(append(append([]byte("Ed"), keyID...), pk...))
	alg, msg := "Ed", data
	if prehash {
		h := blake2b.Sum512(data)
		alg, msg = "ED", h[:]
	}
	s := ed25519.Sign(sk, msg)
	trusted := "timestamp:1700000000\tfile:server"
	global := ed25519.Sign(sk, append(append([]byte(nil), s...), trusted...))
	var b bytes.Buffer
	b.WriteString("untrusted comment: signature from test key\n")
	b.WriteString(base64.StdEncoding.EncodeToString(append(append([]byte(alg), keyID...), s...)) + "\n")
	b.WriteString("trusted comment: " + trusted + "\n")
	b.WriteString(base64.StdEncoding.EncodeToString(global) + "\n")
	return "untrusted comment: minisign public key\n" + pub, b.Bytes(), sk, keyID
}

func TestMinisign(t *testing.T) {
	dir := t.TempDir()
	art := filepath.Join(dir, "server")
	os.WriteFile(art, []byte("#!/bin/sh\necho hi\n"), 0o755)
	for _, prehash := range []bool{true, false} {
		pub, sig, _, _ := minisignFiles(t, []byte("#!/bin/sh\necho hi\n"), prehash)
		sigPath := filepath.Join(dir, "server.minisig")
		os.WriteFile(sigPath, sig, 0o644)
		m := Minisign{PublicKey: pub, Signature: sigPath, Artifact: art}
		if err := m.Verify(nil); err != nil {
			t.Fatalf("prehash %v: %v", prehash, err)
		}
		// The command is the default artifact.
		if err := (Minisign{PublicKey: pub, Signature: sigPath}).Verify(&Identity{Files: []FilePin{{Path: art}}}); err != nil {
			t.Fatal(err)
		}
		other, _, _, _ := minisignFiles(t, nil, true)
		bad := []struct {
			name string
			m    Minisign
			edit func()
			want string
		}{
			{"another key", Minisign{PublicKey: other, Signature: sigPath, Artifact: art}, nil, "does not verify"},
			{"tampered artifact", m, func() { os.WriteFile(art, []byte("#!/bin/sh\nrm -rf /\n"), 0o755) }, "does not verify"},
			{"tampered trusted comment", m, func() {
				os.WriteFile(art, []byte("#!/bin/sh\necho hi\n"), 0o755)
				os.WriteFile(sigPath, bytes.Replace(sig, []byte("file:server"), []byte("file:other!"), 1), 0o644)
			}, "trusted comment"},
			{"garbage", m, func() { os.WriteFile(sigPath, []byte("nonsense"), 0o644) }, "malformed"},
		}
		for _, c := range bad {
			if c.edit != nil {
				c.edit()
			}
			if err := c.m.Verify(nil); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
			}
		}
		os.WriteFile(art, []byte("#!/bin/sh\necho hi\n"), 0o755)
	}
}

// TestMinisignInterop verifies a signature made by the minisign tool
// itself, where it is installed.
func TestMinisignInterop(t *testing.T) {
	bin, err := exec.LookPath("minisign")
	if err != nil {
		t.Skip("minisign not installed")
	}
	dir := t.TempDir()
	art := filepath.Join(dir, "server")
	os.WriteFile(art, []byte("payload"), 0o644)
	pubPath, secPath := filepath.Join(dir, "k.pub"), filepath.Join(dir, "k.sec")
	if out, err := exec.Command(bin, "-G", "-W", "-p", pubPath, "-s", secPath).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, err := exec.Command(bin, "-S", "-s", secPath, "-m", art).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	pub, _ := os.ReadFile(pubPath)
	if err := (Minisign{PublicKey: string(pub), Signature: art + ".minisig", Artifact: art}).Verify(nil); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(art, []byte("payload!"), 0o644)
	if err := (Minisign{PublicKey: string(pub), Signature: art + ".minisig", Artifact: art}).Verify(nil); err == nil {
		t.Fatal("tampered artifact verified")
	}
}

func TestSigstore(t *testing.T) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	art := filepath.Join(dir, "server")
	os.WriteFile(art, []byte("server binary"), 0o755)
	entity, err := vs.Sign("release@example.org", "https://token.actions.githubusercontent.com", []byte("server binary"))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := SigstoreIdentity("release@example.org", "https://token.actions.githubusercontent.com")
	s := Sigstore{Trusted: vs, Entity: entity, Identity: id, WithoutSCT: true} // the virtual CA embeds no SCTs
	pins := &Identity{Files: []FilePin{{Role: "command", Path: art}}}
	if err := s.Verify(pins); err != nil {
		t.Fatal(err)
	}
	if err := (Sigstore{Trusted: vs, Entity: entity, Identity: id}).Verify(pins); err == nil || !strings.Contains(err.Error(), "certificate timestamp") {
		t.Fatalf("a certificate without SCT verified by default: %v", err)
	}
	wrongID, _ := SigstoreIdentity("^mallory@.*$", "https://token.actions.githubusercontent.com")
	if err := (Sigstore{Trusted: vs, Entity: entity, Identity: wrongID, WithoutSCT: true}).Verify(pins); err == nil {
		t.Fatal("another signer's identity verified")
	}
	other, _ := ca.NewVirtualSigstore()
	if err := (Sigstore{Trusted: other, Entity: entity, Identity: id, WithoutSCT: true}).Verify(pins); err == nil {
		t.Fatal("a bundle from another trusted root verified")
	}
	os.WriteFile(art, []byte("server binary, tampered"), 0o755)
	if err := s.Verify(pins); err == nil {
		t.Fatal("tampered artifact verified")
	}

	// npm provenance: an in-toto statement whose subject is the tarball's
	// SHA-512, checked against the integrity the lock pins.
	tarball := sha512.Sum512([]byte("the package tarball"))
	stmt, _ := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": "pkg:npm/%40example/server@1.0.0", "digest": map[string]string{"sha512": hex.EncodeToString(tarball[:])}}},
		"predicateType": "https://slsa.dev/provenance/v1",
		"predicate":     map[string]any{},
	})
	att, err := vs.Attest("release@example.org", "https://token.actions.githubusercontent.com", stmt)
	if err != nil {
		t.Fatal(err)
	}
	npm := &Identity{NPM: &NPMPin{Name: "@example/server", Version: "1.0.0", Integrity: "sha512-" + base64.StdEncoding.EncodeToString(tarball[:])}}
	prov := Sigstore{Trusted: vs, Entity: att, Identity: id, Artifact: "npm", WithoutSCT: true}
	if err := prov.Verify(npm); err != nil {
		t.Fatal(err)
	}
	other512 := sha512.Sum512([]byte("another tarball"))
	npm.NPM.Integrity = "sha512-" + base64.StdEncoding.EncodeToString(other512[:])
	if err := prov.Verify(npm); err == nil {
		t.Fatal("provenance for another tarball verified")
	}
}

func TestLauncherRefusesBadSignature(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "server.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nexec cat\n"), 0o755)
	u := config.Upstream{Name: "s", Stdio: &config.StdioUpstream{Command: "/bin/sh", Args: []string{script}}}
	pinned, err := IdentityOf(u)
	if err != nil {
		t.Fatal(err)
	}
	pub, sig, _, _ := minisignFiles(t, []byte("#!/bin/sh\nexec cat\n"), true)
	sigPath := filepath.Join(dir, "server.sh.minisig")
	os.WriteFile(sigPath, sig, 0o644)
	sink := &memSink{}
	l, err := NewLauncher(LauncherOptions{Next: gateway.PlainLauncher{}, Sink: sink,
		Pins:       func(string) (*Identity, error) { return pinned, nil },
		Signatures: map[string]SignatureCheck{"s": Minisign{PublicKey: pub, Signature: sigPath, Artifact: script}}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.Start(t.Context(), "s", u.Stdio, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	p.Kill("test")
	other, _, _, _ := minisignFiles(t, nil, true)
	l.o.Signatures["s"] = Minisign{PublicKey: other, Signature: sigPath, Artifact: script}
	for range 2 {
		_, err = l.Start(t.Context(), "s", u.Stdio, io.Discard)
		var re *RefusedError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), "minisign") {
			t.Fatalf("err = %v", err)
		}
	}
	if n := len(sink.codes()); n != 1 {
		t.Fatalf("%d events for one refusal reason", n)
	}
	// npx is refused whatever the lock says.
	_, err = l.Start(t.Context(), "s", &config.StdioUpstream{Command: "npx", Args: []string{"-y", "x"}}, io.Discard)
	if !errors.Is(err, err) || err == nil || !strings.Contains(err.Error(), "fetches its package at launch") {
		t.Fatalf("npx: %v", err)
	}
}
