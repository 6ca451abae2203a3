package supply

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/internal/mcptest"
)

func TestIdentityOfRealNPMServers(t *testing.T) {
	for _, u := range realServers(t) {
		start := time.Now()
		id, err := IdentityOf(u)
		if err != nil {
			t.Fatalf("%s: %v", u.Name, err)
		}
		files := 0
		for _, p := range id.NPM.Packages {
			files += len(p.Files)
		}
		t.Logf("%s: %s@%s, %d packages, %d files, pinned in %v", u.Name, id.NPM.Name, id.NPM.Version, len(id.NPM.Packages), files, time.Since(start))
		if !strings.HasPrefix(id.NPM.Integrity, "sha512-") || id.Files[0].Role != "command" {
			t.Fatalf("%+v", id)
		}
		again, _ := IdentityOf(u)
		if err := VerifyIdentity(*id, *again); err != nil {
			t.Fatal(err)
		}
	}
}

// copyNPM copies testdata/npm (package-lock and node_modules) into a
// temporary directory, so that a test can tamper with it.
func copyNPM(t *testing.T) string {
	t.Helper()
	m := mcptest.ModulesFor(t)
	dst := filepath.Join(t.TempDir(), "npm")
	if out, err := exec.Command("cp", "-a", m.Dir, dst).CombinedOutput(); err != nil {
		t.Fatalf("copying %s: %v %s", m.Dir, err, out)
	}
	return dst
}

func TestTamperedNPMTreeIsRefused(t *testing.T) {
	dir := copyNPM(t)
	node, _ := exec.LookPath("node")
	entry := filepath.Join(dir, "node_modules/@modelcontextprotocol/server-memory/dist/index.js")
	u := config.Upstream{Name: "memory", Stdio: &config.StdioUpstream{Command: node, Args: []string{entry}}}
	pinned, err := IdentityOf(u)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		tamper func() error
		want   string
	}{
		{"a file of the server", func() error {
			return appendTo(filepath.Join(dir, "node_modules/@modelcontextprotocol/server-memory/dist/index.js"), "\n// evil\n")
		}, "node_modules/@modelcontextprotocol/server-memory/dist/index.js: file changed"},
		{"a file of a dependency", func() error {
			return appendTo(filepath.Join(dir, "node_modules/zod/package.json"), " ")
		}, "node_modules/zod/package.json: file changed"},
		{"a file added to a dependency", func() error {
			return os.WriteFile(filepath.Join(dir, "node_modules/zod/evil.js"), []byte("x"), 0o644)
		}, "node_modules/zod/evil.js: file added"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.tamper(); err != nil {
				t.Fatal(err)
			}
			now, err := IdentityOf(u)
			if err != nil {
				t.Fatal(err)
			}
			err = VerifyIdentity(*pinned, *now)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestFetchersAreRefused(t *testing.T) {
	for _, c := range []struct {
		cmd  string
		args []string
		want string
	}{
		{"npx", []string{"-y", "@modelcontextprotocol/server-everything"}, "unpinned"},
		{"/usr/bin/npx", []string{"-y", "@modelcontextprotocol/server-everything@2026.8.31"}, "downloads at launch"},
		{"npx", []string{"--no-install", "server"}, "even when told"},
		{"uvx", []string{"mcp-server-fetch"}, "downloads"},
		{"pnpm", []string{"dlx", "x"}, "downloads"},
		{"npm", []string{"exec", "x"}, "downloads"},
	} {
		err := CheckFetcher(c.cmd, c.args)
		if !errors.Is(err, ErrFetchesAtLaunch) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: %v", c.cmd, c.args, err)
		}
	}
	if err := CheckFetcher("node", []string{"/x/index.js"}); err != nil {
		t.Fatal(err)
	}
}

func appendTo(p, s string) error {
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(s)
	return err
}
