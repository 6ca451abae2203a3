package setup

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/credential"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/tier"
)

var ctx = context.Background()

func readAll(t *testing.T, dir config.Dir) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(string(dir), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.HasSuffix(p, ".db") && !strings.Contains(p, ".db-") && !strings.HasSuffix(p, ".jsonl") {
			b, _ := os.ReadFile(p)
			out[p] = string(b)
		}
		return nil
	})
	return out
}

func TestInitCreatesEverythingOnceAndNeverOverwrites(t *testing.T) {
	dir := config.Dir(filepath.Join(t.TempDir(), "w"))
	rep, err := Init(ctx, dir, InitOptions{TrustDomain: "example.org", Tier: tier.Advanced})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Config.Tier != tier.Advanced || rep.Config.TrustDomain != "example.org" {
		t.Fatalf("config = %+v", rep.Config)
	}
	for _, p := range config.KeyPurposes {
		fi, err := os.Stat(dir.KeyFile(p))
		if err != nil {
			t.Fatalf("key %s missing: %v", p, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("key %s mode %v", p, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(dir.Keys()); fi.Mode().Perm() != 0o700 {
		t.Errorf("keys directory mode %v", fi.Mode().Perm())
	}
	admin, err := credential.Load(dir.Admin())
	if err != nil || admin.ID.String() != "spiffe://example.org/admin/admin" {
		t.Fatalf("admin credential: %v %v", admin, err)
	}
	var mode string
	d, err := Open(ctx, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d.DB.QueryRow("PRAGMA journal_mode").Scan(&mode)
	d.Close()
	if mode != "wal" {
		t.Errorf("database journal mode %q", mode)
	}

	before := readAll(t, dir)
	rep2, err := Init(ctx, dir, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep2.Created) != 0 {
		t.Errorf("second init created %v", rep2.Created)
	}
	after := readAll(t, dir)
	for p, b := range before {
		if after[p] != b {
			t.Errorf("second init changed %s", p)
		}
	}
	if _, err := Init(ctx, dir, InitOptions{TrustDomain: "other.org"}); err == nil || !strings.Contains(err.Error(), "refusing to change") {
		t.Errorf("init changed the trust domain: %v", err)
	}
}

func TestInitCompletesAPartialDirectory(t *testing.T) {
	dir := config.Dir(t.TempDir())
	if _, err := Init(ctx, dir, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	root, _ := os.ReadFile(dir.CertFile(config.KeyX509Root))
	// The intermediate is lost, and the memory key with it: init makes new
	// ones from the root key, and keeps the root.
	os.Remove(dir.CertFile(config.KeyX509Intermediate))
	os.Remove(dir.KeyFile(config.KeyX509Intermediate))
	os.Remove(dir.KeyFile(config.KeyMemory))
	rep, err := Init(ctx, dir, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Created) != 3 {
		t.Errorf("created %v, want the intermediate key and certificate and the memory key", rep.Created)
	}
	if again, _ := os.ReadFile(dir.CertFile(config.KeyX509Root)); string(again) != string(root) {
		t.Fatal("init replaced the root")
	}
	// With the root key offline, a lost intermediate cannot be replaced.
	os.Rename(dir.KeyFile(config.KeyX509Root), filepath.Join(t.TempDir(), "offline.key"))
	os.Remove(dir.CertFile(config.KeyX509Intermediate))
	os.Remove(dir.KeyFile(config.KeyX509Intermediate))
	if _, err := Init(ctx, dir, InitOptions{}); err == nil || !strings.Contains(err.Error(), "offline root key") {
		t.Fatalf("err = %v", err)
	}
}

func TestOpenRefusesBrokenDirectories(t *testing.T) {
	cases := []struct {
		name   string
		damage func(config.Dir)
		want   string
	}{
		{"missing directory", func(d config.Dir) { os.RemoveAll(string(d)) }, "does not exist"},
		{"no config", func(d config.Dir) { os.Remove(d.Config()) }, "not a Warden data directory"},
		{"bad config", func(d config.Dir) { os.WriteFile(d.Config(), []byte("tier: gold\n"), 0o600) }, "unknown tier"},
		{"missing JWT key", func(d config.Dir) { os.Remove(d.KeyFile(config.KeyJWTSVID)) }, "jwt-svid.key is missing"},
		{"missing intermediate", func(d config.Dir) { os.Remove(d.CertFile(config.KeyX509Intermediate)) }, "x509-intermediate.crt is missing"},
		{"exposed key", func(d config.Dir) { os.Chmod(d.KeyFile(config.KeyX509Intermediate), 0o644) }, "chmod 600"},
		{"garbage certificate", func(d config.Dir) { os.WriteFile(d.CertFile(config.KeyX509Root), []byte("junk"), 0o644) }, "not PEM"},
		{"mismatched intermediate key", func(d config.Dir) {
			os.Remove(d.KeyFile(config.KeyX509Intermediate))
			b, _ := os.ReadFile(d.KeyFile(config.KeyJWTSVID))
			os.WriteFile(d.KeyFile(config.KeyX509Intermediate), b, 0o600)
		}, "does not match"},
		{"corrupted database", func(d config.Dir) {
			os.Remove(d.Database() + "-wal")
			os.Remove(d.Database() + "-shm")
			os.WriteFile(d.Database(), []byte(strings.Repeat("garbage!", 4096)), 0o600)
		}, "database"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := config.Dir(filepath.Join(t.TempDir(), "w"))
			if _, err := Init(ctx, dir, InitOptions{}); err != nil {
				t.Fatal(err)
			}
			c.damage(dir)
			_, err := Open(ctx, dir, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
}

// An agent enrolled in process holds a credential the identity service
// verifies as that agent, and its record is active; a second enrolment
// under the same name is refused.
func TestEnrolAgent(t *testing.T) {
	dir := config.Dir(filepath.Join(t.TempDir(), "w"))
	if _, err := Init(ctx, dir, InitOptions{TrustDomain: "example.org"}); err != nil {
		t.Fatal(err)
	}
	d, err := Open(ctx, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Identity.Registry().Load(ctx); err != nil {
		t.Fatal(err)
	}
	cred, rec, err := d.EnrolAgent(ctx, "test", identity.Spec{Name: "bot", Owner: "ops@example.org", Model: "test"})
	if err != nil {
		t.Fatal(err)
	}
	caller, err := d.Identity.Verifier().VerifyX509(cred.Chain)
	if err != nil || caller.ID != rec.ID || cred.ID.String() != "spiffe://example.org/agent/bot" {
		t.Fatalf("enrolled credential: caller %+v, record %s, credential %s: %v", caller, rec.ID, cred.ID, err)
	}
	if _, _, err := d.EnrolAgent(ctx, "test", identity.Spec{Name: "bot", Owner: "ops@example.org", Model: "test"}); err == nil {
		t.Fatal("a second agent of the same name was enrolled")
	}
}
