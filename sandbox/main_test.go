package sandbox

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

// Environment variables the root test run passes to its unprivileged re-run.
const (
	envHostile   = "WARDEN_TEST_HOSTILE"    // path of the hostile binary, already built
	envUnprivRun = "WARDEN_TEST_UNPRIV_RUN" // set in the unprivileged re-run
	unprivUser   = "warden-sbx-test"
)

// testEnv is what TestMain prepares for the escape tests.
var testEnv struct {
	hostile    string // path of the hostile binary ("" when it could not be built)
	init       string // path of the init the escape tests launch (testinit, beside hostile)
	hostileDir string
	buildErr   error
}

func TestMain(m *testing.M) {
	// A launch re-executes this test binary as the sandbox's init.
	MaybeInit()
	code := func() int {
		if p := os.Getenv(envHostile); p != "" {
			useTestBinaries(filepath.Dir(p))
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "warden-hostile-")
		if err != nil {
			testEnv.buildErr = err
			return m.Run()
		}
		defer os.RemoveAll(dir)
		// World-readable: the sandbox's user and the unprivileged re-run
		// must reach the binary.
		_ = os.Chmod(dir, 0o755)
		for _, b := range []struct{ name, pkg string }{{"hostile", "./internal/hostile"}, {"testinit", "./internal/testinit"}} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.name), b.pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				testEnv.buildErr = fmt.Errorf("building the %s program: %v\n%s", b.name, err, out)
				return m.Run()
			}
		}
		useTestBinaries(dir)
		return m.Run()
	}()
	os.Exit(code)
}

// useTestBinaries points the escape tests at the hostile program and the
// init built into dir (by TestMain, or by the run that re-executes this one
// unprivileged).
func useTestBinaries(dir string) {
	testEnv.hostile, testEnv.init, testEnv.hostileDir = filepath.Join(dir, "hostile"), filepath.Join(dir, "testinit"), dir
}

// prepareUnprivileged creates the unprivileged test user and a copy of this
// test binary it can execute. It returns a reason to skip when it cannot.
func prepareUnprivileged(t *testing.T) (uid, gid int, bin string, skip string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return 0, 0, "", "not root: cannot create the unprivileged test user (the run as the invoking user is the unprivileged run)"
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		return 0, 0, "", "useradd is not installed (package passwd): cannot create the unprivileged test user"
	}
	u, err := user.Lookup(unprivUser)
	if err != nil {
		out, err := exec.Command("useradd", "--system", "--create-home", "--shell", "/usr/sbin/nologin", unprivUser).CombinedOutput()
		if err != nil {
			return 0, 0, "", fmt.Sprintf("useradd %s failed: %v: %s", unprivUser, err, out)
		}
		if u, err = user.Lookup(unprivUser); err != nil {
			return 0, 0, "", fmt.Sprintf("looking up %s: %v", unprivUser, err)
		}
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err == nil && string(b) == "0\n" {
		return 0, 0, "", "user.max_user_namespaces is 0: unprivileged users cannot create user namespaces"
	}
	if b, err := os.ReadFile("/proc/sys/kernel/unprivileged_userns_clone"); err == nil && string(b) == "0\n" {
		return 0, 0, "", "kernel.unprivileged_userns_clone is 0: unprivileged users cannot create user namespaces"
	}
	if b, err := os.ReadFile("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"); err == nil && string(b) == "1\n" {
		return 0, 0, "", "kernel.apparmor_restrict_unprivileged_userns is 1: AppArmor refuses unprivileged user namespaces"
	}
	dir, err := os.MkdirTemp("", "warden-sbx-test-")
	if err != nil {
		return 0, 0, "", err.Error()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	_ = os.Chmod(dir, 0o755)
	bin = filepath.Join(dir, "sandbox.test")
	self, err := os.Executable()
	if err != nil {
		return 0, 0, "", err.Error()
	}
	if err := copyFile(self, bin, 0o755); err != nil {
		return 0, 0, "", err.Error()
	}
	return uid, gid, bin, ""
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
