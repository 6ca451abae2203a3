package supply

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-run/warden/config"
)

func TestSnapshot(t *testing.T) {
	dir := copyNPM(t)
	node, _ := exec.LookPath("node")
	entry := filepath.Join(dir, "node_modules/@modelcontextprotocol/server-memory/dist/index.js")
	u := config.Upstream{Name: "memory", Stdio: &config.StdioUpstream{Command: node, Args: []string{entry}}}
	pinned, err := IdentityOf(u)
	if err != nil {
		t.Fatal(err)
	}
	s := &snapshots{base: t.TempDir()}
	defer s.close()
	sn, err := s.get(pinned)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := s.get(pinned); again != sn {
		t.Fatal("the snapshot of one identity was made twice")
	}
	run := StdioRun{Command: pinned.Files[0].Path, Args: []string{entry}}
	sn.rewrite(pinned, &run)
	if !strings.HasPrefix(run.Args[0], sn.dir) || run.Command != pinned.Files[0].Path {
		t.Fatalf("rewritten: %+v", run)
	}
	a, _ := os.ReadFile(entry)
	b, err := os.ReadFile(run.Args[0])
	if err != nil || string(a) != string(b) {
		t.Fatalf("copy differs: %v", err)
	}
	fi, _ := os.Stat(run.Args[0])
	di, _ := os.Stat(filepath.Dir(run.Args[0]))
	if fi.Mode().Perm()&0o222 != 0 || di.Mode().Perm()&0o222 != 0 {
		t.Fatalf("snapshot writable: %v %v", fi.Mode(), di.Mode())
	}
	// The snapshot runs: node loads the server and its dependencies from
	// it alone (a dependency missing from the closure would fail here).
	out, err := exec.Command(node, "-e", "import('"+run.Args[0]+"').then(()=>{}).catch(e=>{console.error(e);process.exit(3)}); setTimeout(()=>process.exit(0), 1500)").CombinedOutput()
	if err != nil {
		t.Fatalf("running from the snapshot: %v\n%s", err, out)
	}
	// A file that changes between the check and the copy fails the copy.
	if err := appendTo(filepath.Join(dir, "node_modules/zod/package.json"), " "); err != nil {
		t.Fatal(err)
	}
	if _, err := (&snapshots{base: t.TempDir()}).get(pinned); err == nil || !strings.Contains(err.Error(), "changed since it was verified") {
		t.Fatalf("err = %v", err)
	}
}
