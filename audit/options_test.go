package audit

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/tier"
)

func TestEnsureKeyCreatesOnceAsPKCS8(t *testing.T) {
	d := config.Dir(t.TempDir())
	p := KeyPath(d)
	k1, err := EnsureKey(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode().Perm(), err)
	}
	if di, _ := os.Stat(filepath.Dir(p)); di.Mode().Perm() != 0o700 {
		t.Errorf("keys dir mode %v", di.Mode().Perm())
	}
	if b, _ := os.ReadFile(p); !bytes.HasPrefix(b, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("not PKCS#8 PEM: %q", b[:30])
	}
	k2, err := EnsureKey(p)
	if err != nil || !k1.Equal(k2) {
		t.Fatal("EnsureKey replaced an existing key")
	}
	os.WriteFile(p, []byte("garbage"), 0o600)
	if _, err := EnsureKey(p); err == nil {
		t.Fatal("EnsureKey accepted (or overwrote) a damaged key file")
	}
}

func TestOptionsFromConfig(t *testing.T) {
	cfg, err := config.Parse(strings.NewReader("trust_domain: example.org\ntier: foundation\naudit:\n  publish:\n  - type: file\n    path: /mnt/w/cp\n  - type: http\n    url: https://siem.example.org/cp\n  - type: syslog\n"))
	if err != nil {
		t.Fatal(err)
	}
	o, err := OptionsFrom(cfg, testKey(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Mode != tier.AuditAsync || o.Origin != "example.org/warden/audit" || len(o.Publishers) != 3 {
		t.Fatalf("options = %+v", o)
	}
	cfg.Tier = tier.Advanced
	if o, _ := OptionsFrom(cfg, testKey(t), nil); o.Mode != tier.AuditSync {
		t.Fatalf("advanced tier gave mode %s", o.Mode)
	}
}

func TestOpenRefusesBadOptionsAndASecondWriter(t *testing.T) {
	key := testKey(t)
	dir := t.TempDir()
	for name, o := range map[string]Options{
		"no key":      {Origin: testOrigin, Mode: tier.AuditSync},
		"bad origin":  {Key: key, Origin: "has space", Mode: tier.AuditSync},
		"no mode":     {Key: key, Origin: testOrigin},
		"huge events": {Key: key, Origin: testOrigin, Mode: tier.AuditSync, MaxEventBytes: 1 << 30},
	} {
		if l, err := Open(context.Background(), dir, o); err == nil {
			l.Close(context.Background())
			t.Errorf("%s: Open succeeded", name)
		}
	}
	l := openLog(t, dir, testOptions(key, tier.AuditSync))
	defer closeLog(t, l)
	if l2, err := Open(context.Background(), dir, testOptions(key, tier.AuditSync)); err == nil {
		l2.Close(context.Background())
		t.Fatal("a second writer opened the same log")
	}
	if _, err := Open(context.Background(), dir+"x", testOptions(testKey(t), tier.AuditSync)); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesAnotherKeysLog(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, testOptions(testKey(t), tier.AuditSync))
	emitN(t, l, 0, 3)
	closeLog(t, l)
	_, err := Open(context.Background(), dir, testOptions(testKey(t), tier.AuditSync))
	if err == nil || !strings.Contains(err.Error(), "not signed by") {
		t.Fatalf("Open with another key = %v", err)
	}
}

func TestAsyncLogTightensToSync(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, testOptions(testKey(t), tier.AuditAsync))
	defer closeLog(t, l)
	emitN(t, l, 0, 5)
	l.RequireSync()
	if l.Mode() != tier.AuditSync {
		t.Fatal("RequireSync did not switch to sync")
	}
	emitN(t, l, 5, 1)
	if l.Size() != 6 { // in sync mode Emit returned after the write
		t.Fatalf("size %d after a sync emit, want 6", l.Size())
	}
	if err := l.Emit(context.Background(), testEvent(0, 2<<20)); err == nil {
		t.Fatal("an event over the size limit was accepted")
	}
}
