package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/tier"
)

// harness runs the hostile program in sandboxes at the Advanced tier, so
// that a launch missing any required mechanism fails the test instead of
// running weakened.
type harness struct {
	t        *testing.T
	l        *Launcher
	rec      *events.Recorder
	dataDir  string
	home     string
	resolver *fakeResolver
	dialer   *loopbackDialer
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	if testEnv.buildErr != nil {
		t.Fatal(testEnv.buildErr)
	}
	h := &harness{t: t, rec: &events.Recorder{}, resolver: &fakeResolver{}, dialer: &loopbackDialer{}}
	h.home = t.TempDir()
	t.Setenv("HOME", h.home)
	h.dataDir = t.TempDir()
	for _, d := range []string{h.home, h.dataDir} {
		if err := os.WriteFile(filepath.Join(d, "canary"), []byte("secret"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := New(Options{Tier: tier.Advanced, Sink: h.rec, DataDir: h.dataDir, Resolver: h.resolver, Dialer: h.dialer, InitPath: testEnv.init})
	if err != nil {
		t.Fatal(err)
	}
	h.l = l
	return h
}

// run runs the hostile program with args in prof and returns its output.
func (h *harness) run(prof config.SandboxProfile, args ...string) (string, Exit) {
	h.t.Helper()
	return h.runSpec(Spec{Profile: prof}, args...)
}

func (h *harness) runSpec(spec Spec, args ...string) (string, Exit) {
	h.t.Helper()
	spec.Profile.ReadOnly = append(append([]string(nil), spec.Profile.ReadOnly...), testEnv.hostileDir)
	spec.Args = append([]string{testEnv.hostile}, args...)
	var out, errb bytes.Buffer
	spec.Stdout, spec.Stderr = &out, &errb
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ex, p, err := h.l.Run(ctx, spec)
	if err != nil {
		h.t.Fatalf("launch %v: %v", args, err)
	}
	if miss := p.Mechanisms().Missing(allMechanisms); len(miss) > 0 {
		h.t.Logf("mechanisms not in force: %v (%v)", miss, p.Mechanisms().Warnings)
	}
	if errb.Len() > 0 {
		h.t.Logf("stderr of %v: %s", args, truncate(errb.String(), 2000))
	}
	return out.String(), ex
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// result returns the line of the named attempt.
func result(t *testing.T, out, name string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, name+" ") {
			return line
		}
	}
	t.Fatalf("no result for %q in output:\n%s", name, out)
	return ""
}

func expectBlocked(t *testing.T, out string, names ...string) {
	t.Helper()
	for _, n := range names {
		if line := result(t, out, n); !strings.HasPrefix(line, n+" ERR") {
			t.Errorf("ESCAPE: %s", line)
		}
	}
}

func expectOK(t *testing.T, out string, names ...string) {
	t.Helper()
	for _, n := range names {
		if line := result(t, out, n); !strings.HasPrefix(line, n+" OK") {
			t.Errorf("control attempt failed: %s", line)
		}
	}
}

func TestEscapeReadHostSecrets(t *testing.T) {
	h := newHarness(t)
	dataCanary, homeCanary := filepath.Join(h.dataDir, "canary"), filepath.Join(h.home, "canary")
	out, _ := h.run(DefaultProfile(), "read", "/etc/shadow", dataCanary, homeCanary, "/etc/hosts")
	expectBlocked(t, out, "read:/etc/shadow", "read:"+dataCanary, "read:"+homeCanary)
	expectOK(t, out, "read:/etc/hosts")

	// With the host's /etc exposed, /etc/shadow stays unreadable: the
	// sandbox's root is not the host's root (hole 4).
	out, _ = h.run(config.SandboxProfile{ReadOnly: []string{"/etc"}}, "read", "/etc/shadow")
	expectBlocked(t, out, "read:/etc/shadow")

	// A profile that would expose the home or the data directory is refused.
	for _, p := range []string{h.home, h.dataDir, filepath.Dir(h.dataDir)} {
		_, err := h.l.Start(context.Background(), Spec{Profile: config.SandboxProfile{ReadOnly: []string{p}}, Args: []string{"true"}})
		if !errors.Is(err, ErrRefused) {
			t.Errorf("profile exposing %s: err = %v, want ErrRefused", p, err)
		}
	}
}

func TestEscapeWriteOutsideWorkspace(t *testing.T) {
	h := newHarness(t)
	rw := t.TempDir()
	chownToSandbox(t, rw)
	out, _ := h.run(config.SandboxProfile{ReadWrite: []string{rw}}, "write",
		"/usr/hostile", "/etc/hostile", "/hostile", "/proc/hostile", "/dev/hostile", testEnv.hostileDir+"/hostile",
		"/workspace/ok", "/tmp/ok", "/dev/shm/ok", rw+"/ok")
	expectBlocked(t, out, "write:/usr/hostile", "write:/etc/hostile", "write:/hostile", "write:/proc/hostile",
		"write:/dev/hostile", "write:"+testEnv.hostileDir+"/hostile")
	expectOK(t, out, "write:/workspace/ok", "write:/tmp/ok", "write:/dev/shm/ok", "write:"+rw+"/ok")
}

func TestEscapeSymlinksAndDotDot(t *testing.T) {
	h := newHarness(t)
	parent := t.TempDir()
	canary := filepath.Join(parent, "canary")
	if err := os.WriteFile(canary, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	ws := filepath.Join(parent, "ws")
	if err := os.Mkdir(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"abs": canary, "rel": "../canary", "root": "/", "up": "../../../../.."} {
		if err := os.Symlink(target, filepath.Join(ws, name)); err != nil {
			t.Fatal(err)
		}
	}
	chownToSandbox(t, ws)
	out, _ := h.runSpec(Spec{Profile: DefaultProfile(), Workspace: ws}, "read",
		"/workspace/abs", "/workspace/rel", "/workspace/../canary", "/workspace/up"+canary, "/workspace/root"+canary, canary)
	expectBlocked(t, out, "read:/workspace/abs", "read:/workspace/rel", "read:/workspace/../canary",
		"read:/workspace/up"+canary, "read:/workspace/root"+canary, "read:"+canary)
}

func TestEscapeUIDMapAndSetuid(t *testing.T) {
	h := newHarness(t)
	ws := t.TempDir()
	chownToSandbox(t, ws)
	out, _ := h.runSpec(Spec{Profile: DefaultProfile(), Workspace: ws}, "uid")
	line := result(t, out, "uidmap")
	fields := strings.Fields(line)
	if len(fields) != 4 || fields[1] != "0" || fields[2] == "0" || fields[3] != "1" {
		t.Fatalf("sandbox uid map %q: want sandbox uid 0 mapped to one unprivileged host uid", line)
	}
	out, _ = h.runSpec(Spec{Profile: DefaultProfile(), Workspace: ws}, "setuid", "/workspace/suid")
	expectBlocked(t, out, "setuid1", "chown")
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(ws, "suid"), &st); err == nil {
		if st.Uid == 0 {
			t.Errorf("ESCAPE: the planted file is owned by host root (mode %o)", st.Mode)
		}
	}
}

func TestEscapeProcMemOfInit(t *testing.T) {
	h := newHarness(t)
	out, ex := h.run(DefaultProfile(), "procmem")
	expectBlocked(t, out, "procmem", "procfd3", "procfd4", "procenviron", "procroot")
	if !ex.Success() {
		t.Errorf("exit %v", ex)
	}
	out, _ = h.run(DefaultProfile(), "kill1")
	// Landlock scoping refuses the signal; PID 1 ignores it in any case.
	expectBlocked(t, out, "kill1")
}

func TestEscapeMPTCP(t *testing.T) {
	h := newHarness(t)
	out, _ := h.run(DefaultProfile(), "mptcp")
	expectBlocked(t, out, "mptcp", "mptcp6")
	if !strings.Contains(result(t, out, "mptcp"), "protocol not supported") {
		t.Errorf("MPTCP refused with the wrong error: %s", result(t, out, "mptcp"))
	}
}

func TestEscapeInt80(t *testing.T) {
	h := newHarness(t)
	out, ex := h.run(DefaultProfile(), "int80")
	if strings.Contains(out, "int80 unsupported") {
		t.Skip("no 32-bit ABI on this architecture")
	}
	if strings.Contains(out, "int80 OK") || ex.Signal != "SIGSYS" {
		t.Fatalf("ESCAPE: a 32-bit syscall was not killed: exit %v, output %q", ex, out)
	}
}

func TestEscapeInheritedFDs(t *testing.T) {
	h := newHarness(t)
	// Descriptors this process leaks to its children (no close-on-exec): a
	// directory of the host's root, Warden's data directory, a secret file.
	var leaked []int
	for _, p := range []string{"/", h.dataDir, filepath.Join(h.dataDir, "canary")} {
		fd, err := syscall.Open(p, syscall.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		leaked = append(leaked, fd)
	}
	defer func() {
		for _, fd := range leaked {
			syscall.Close(fd)
		}
	}()
	out, _ := h.run(DefaultProfile(), "fds")
	line := result(t, out, "fds")
	for _, fd := range strings.Split(strings.Fields(line)[1], ",") {
		n, _ := strconv.Atoi(fd)
		if n > 3 { // 3 is the directory the listing reads
			t.Errorf("ESCAPE: descriptor %d reached the tool (%s)", n, line)
		}
	}
	out, _ = h.run(DefaultProfile(), "fdescape")
	if strings.Contains(out, " OK") {
		t.Errorf("ESCAPE through an inherited descriptor:\n%s", out)
	}
}

func TestEscapePtraceMountUnshareSetns(t *testing.T) {
	h := newHarness(t)
	host := exec.Command("/bin/sleep", "30")
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { host.Process.Kill(); host.Wait() }()
	out, _ := h.run(DefaultProfile(), "ptrace", "1", strconv.Itoa(host.Process.Pid), strconv.Itoa(os.Getpid()))
	expectBlocked(t, out, "ptrace:1", "ptrace:"+strconv.Itoa(host.Process.Pid), "ptrace:"+strconv.Itoa(os.Getpid()))
	out, _ = h.run(DefaultProfile(), "mount")
	expectBlocked(t, out, "mount", "umount")
	out, _ = h.run(DefaultProfile(), "unshare")
	expectBlocked(t, out, "unshare-user", "unshare-ns", "clone-newuser", "clone3")
	out, _ = h.run(DefaultProfile(), "setns")
	expectBlocked(t, out, "setns")
}

func TestEscapeTIOCSTI(t *testing.T) {
	h := newHarness(t)
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal to test with: %v", err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	out, _ := h.runSpec(Spec{Profile: DefaultProfile(), Stdin: slave}, "tiocsti")
	expectBlocked(t, out, "tiocsti", "tiocsti-high")
	// Nothing was pushed into the terminal's input.
	fds := []unix.PollFd{{Fd: int32(slave.Fd()), Events: unix.POLLIN}}
	if n, _ := unix.Poll(fds, 200); n > 0 && fds[0].Revents&unix.POLLIN != 0 {
		buf := make([]byte, 16)
		n, _ := unix.Read(int(slave.Fd()), buf)
		t.Errorf("ESCAPE: %q was injected into the terminal", buf[:max(n, 0)])
	}
}

func TestEscapeForkBomb(t *testing.T) {
	h := newHarness(t)
	prof := DefaultProfile()
	prof.Limits = config.SandboxLimits{Pids: 64, WallClock: 30 * time.Second}
	out, ex := h.run(prof, "forkbomb")
	line := result(t, out, "forkbomb")
	n, _ := strconv.Atoi(strings.Fields(line)[2])
	if n <= 0 || n >= 64 {
		t.Errorf("fork bomb started %d processes under a limit of 64 (%s)", n, line)
	}
	if ex.Reason == ExitTimeout {
		t.Errorf("the sandbox did not end with its tool: %v", ex)
	}
	// The whole tree went with the sandbox: no sleeper survived.
	if left := countProcs("/bin/sleep\x0067\x00"); left > 0 {
		t.Errorf("%d fork-bomb processes outlived their sandbox", left)
	}
}

func TestEscapeMemoryBomb(t *testing.T) {
	h := newHarness(t)
	prof := DefaultProfile()
	prof.Limits = config.SandboxLimits{Memory: 96 << 20, WallClock: 60 * time.Second}
	out, ex := h.run(prof, "membomb")
	if strings.Contains(out, "membomb OK") {
		t.Fatalf("ESCAPE: 4 GiB allocated under a 96 MiB limit")
	}
	if ex.Success() {
		t.Errorf("the memory bomb exited successfully: %v", ex)
	}
	got := 0
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "membomb" {
			got, _ = strconv.Atoi(f[1])
		}
	}
	if got > 160 {
		t.Errorf("allocated %d MiB under a 96 MiB limit", got)
	}
	if strings.Contains(ex.Detail, "init ended without reporting") {
		t.Errorf("the sandbox's init died with its tool, so the cause is lost: %v", ex)
	}
	t.Logf("memory bomb stopped after %d MiB: %v", got, ex)
}

// TestEscapeRaiseLimits: the tool's limits are soft rlimits where no cgroup
// holds them, so raising them to the hard limit must be refused.
func TestEscapeRaiseLimits(t *testing.T) {
	h := newHarness(t)
	prof := DefaultProfile()
	prof.Limits = config.SandboxLimits{Memory: 256 << 20, Pids: 64, OpenFiles: 128, WallClock: 30 * time.Second}
	out, ex := h.run(prof, "rlimit")
	expectBlocked(t, out, "setrlimit:data", "prlimit:data", "setrlimit:nofile", "prlimit:nofile", "setrlimit:nproc", "prlimit:nproc")
	if f := strings.Fields(result(t, out, "limit:nofile")); len(f) != 3 || f[1] != "128" {
		t.Errorf("open-files limit in the sandbox: %v, want a soft limit of 128", f)
	}
	if !ex.Success() {
		t.Errorf("exit %v", ex)
	}
}

func TestEscapeTimeoutAndKill(t *testing.T) {
	h := newHarness(t)
	prof := DefaultProfile()
	prof.Limits.WallClock = 300 * time.Millisecond
	start := time.Now()
	_, ex := h.run(prof, "sleep", "30s")
	if ex.Reason != ExitTimeout || time.Since(start) > 10*time.Second {
		t.Fatalf("wall-clock limit: %v after %v", ex, time.Since(start))
	}
	p, err := h.l.StartStdio(context.Background(), Spec{Profile: withHostile(DefaultProfile()), Args: []string{testEnv.hostile, "sleep", "30s"}})
	if err != nil {
		t.Fatal(err)
	}
	p.Kill(ExitContained, "rule r1")
	if ex := p.Wait(); ex.Reason != ExitContained || ex.Detail != "rule r1" {
		t.Fatalf("containment kill: %v", ex)
	}
}

func TestEscapeNetwork(t *testing.T) {
	h := newHarness(t)
	var served atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		fmt.Fprintln(w, "hello-from-host")
	}))
	defer srv.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsSrv.Close()
	// A host service on loopback that no sandbox may reach.
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var rawAccepted atomic.Int32
	go func() {
		for {
			c, err := raw.Accept()
			if err != nil {
				return
			}
			rawAccepted.Add(1)
			c.Close()
		}
	}()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	tlsPort := tlsSrv.Listener.Addr().(*net.TCPAddr).Port
	rawAddr := raw.Addr().String()
	h.resolver.set(map[string][]string{
		"allowed.test":  {"127.0.0.1"},
		"tls.test":      {"127.0.0.1"},
		"metadata.test": {"169.254.169.254"},
		"rebind.test":   {"93.184.216.34", "10.1.2.3"},
	})
	prof := config.SandboxProfile{Network: config.NetworkEgress, Egress: []config.EgressRule{
		{Host: "allowed.test", Ports: []int{port}, AllowPrivate: true},
		{Host: "tls.test", Ports: []int{tlsPort}, AllowPrivate: true},
		{Host: "metadata.test", Ports: []int{80}},
		{Host: "rebind.test", Ports: []int{80}},
	}}
	allowed := fmt.Sprintf("http://allowed.test:%d/", port)
	out, _ := h.run(prof, "proxyget", allowed,
		"http://evil.test/", fmt.Sprintf("http://127.0.0.1:%d/", port), "http://169.254.169.254/latest/meta-data/",
		"http://metadata.test/", "http://rebind.test/", "http://allowed.test:1/", "http://[::1]:80/", "http://2130706433/")
	expectOK(t, out, "get:"+allowed)
	expectBlocked(t, out, "get:http://evil.test/", fmt.Sprintf("get:http://127.0.0.1:%d/", port),
		"get:http://169.254.169.254/latest/meta-data/", "get:http://metadata.test/", "get:http://rebind.test/",
		"get:http://allowed.test:1/", "get:http://[::1]:80/", "get:http://2130706433/")
	for name, reason := range map[string]string{
		"get:http://evil.test/":                        EgressHostNotAllowed,
		"get:http://169.254.169.254/latest/meta-data/": EgressIPLiteral,
		"get:http://metadata.test/":                    EgressPrivateAddress,
		"get:http://rebind.test/":                      EgressPrivateAddress,
		"get:http://2130706433/":                       EgressIPLiteral,
	} {
		if l := result(t, out, name); !strings.Contains(l, reason) {
			t.Errorf("%s: want reason %s", l, reason)
		}
	}

	// Clients that ignore proxy variables reach allowed names through the
	// loopback forwarders, and nothing else.
	out, _ = h.run(prof, "directget", allowed, "http://evil.test/")
	expectOK(t, out, "get:"+allowed)
	expectBlocked(t, out, "get:http://evil.test/")

	// Direct connections: the host's loopback services, the metadata
	// address, a public address.
	out, _ = h.run(prof, "connect", rawAddr, "169.254.169.254:80", "127.0.0.1:22", "[::1]:"+strconv.Itoa(port))
	expectBlocked(t, out, "connect:"+rawAddr, "connect:169.254.169.254:80", "connect:127.0.0.1:22", "connect:[::1]:"+strconv.Itoa(port))

	// TLS through a tunnel must name the host the tunnel was opened for.
	tlsTarget := fmt.Sprintf("tls.test:%d", tlsPort)
	out, _ = h.run(prof, "tls", tlsTarget, "tls.test")
	expectOK(t, out, "tls:tls.test")
	out, _ = h.run(prof, "tls", tlsTarget, "evil.test")
	expectBlocked(t, out, "tls:evil.test")
	if len(h.rec.Find(EgressSNIMismatch)) == 0 {
		t.Error("no egress_sni_mismatch event")
	}

	// DNS exfiltration: nothing resolves names in the sandbox, and the
	// proxy never resolves a name no rule allows.
	out, _ = h.run(prof, "dns", "c2VjcmV0.exfil.test", "allowed.test")
	expectBlocked(t, out, "dns:c2VjcmV0.exfil.test")
	expectOK(t, out, "dns:allowed.test") // from the sandbox's /etc/hosts
	out, _ = h.run(prof, "udp", "198.51.100.1:53")
	expectBlocked(t, out, "udp:198.51.100.1:53")
	out, _ = h.run(DefaultProfile(), "proxyget", allowed)
	expectBlocked(t, out, "get:"+allowed) // network none: no proxy at all

	for _, name := range h.resolver.asked() {
		if name != "allowed.test" && name != "tls.test" && name != "metadata.test" && name != "rebind.test" {
			t.Errorf("the proxy resolved %q, which no rule allows", name)
		}
	}
	for _, a := range h.dialer.dialed() {
		if !a.Addr().IsLoopback() {
			t.Errorf("the proxy dialled %s", a)
		}
	}
	if rawAccepted.Load() != 0 {
		t.Errorf("ESCAPE: the host's loopback service accepted %d connections", rawAccepted.Load())
	}
	if got := served.Load(); got != 2 {
		t.Errorf("the allowed server answered %d requests, want 2", got)
	}
	if len(h.rec.Find(EgressAllowed)) < 3 || len(h.rec.Find(EgressHostNotAllowed)) == 0 {
		t.Errorf("egress events missing: %d allowed, %d refused", len(h.rec.Find(EgressAllowed)), len(h.rec.Find(EgressHostNotAllowed)))
	}
}

// TestEscapesUnprivileged re-runs the escape tests as an unprivileged user
// created here, where the machine allows it.
func TestEscapesUnprivileged(t *testing.T) {
	if os.Getenv(envUnprivRun) != "" {
		t.Skip("this is the unprivileged run")
	}
	if testEnv.buildErr != nil {
		t.Fatal(testEnv.buildErr)
	}
	uid, gid, bin, skip := prepareUnprivileged(t)
	if skip != "" {
		t.Skip(skip)
	}
	cmd := exec.Command(bin, "-test.run", "^TestEscape[^s]", "-test.v", "-test.count=1")
	cmd.Dir = "/"
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin", "TMPDIR=/tmp", "HOME=/home/" + unprivUser,
		envHostile + "=" + testEnv.hostile, envUnprivRun + "=1",
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	t.Logf("unprivileged run as uid %d:\n%s", uid, out)
	if err != nil {
		t.Fatalf("escape tests as an unprivileged user: %v", err)
	}
}

// chownToSandbox makes dir writable by the sandbox's user (nobody when the
// tests run as root).
func chownToSandbox(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	uid, gid, err := hostIdentity("")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	// The sandbox's user must also reach it.
	for d := filepath.Dir(dir); d != "/" && d != "."; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			_ = os.Chmod(d, fi.Mode().Perm()|0o011)
		}
	}
}

func withHostile(p config.SandboxProfile) config.SandboxProfile {
	p.ReadOnly = append(append([]string(nil), p.ReadOnly...), testEnv.hostileDir)
	return p
}

// countProcs counts host processes whose command line is exactly cmdline.
func countProcs(cmdline string) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && string(b) == cmdline {
			n++
		}
	}
	return n
}

// countChildrenPrefix counts this process's children whose command line
// starts with prefix (other test binaries may run sandboxes at the same
// time).
func countChildrenPrefix(prefix string) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	me := fmt.Sprintf("PPid:\t%d\n", os.Getpid())
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.HasPrefix(string(b), prefix) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status")); err == nil && strings.Contains(string(st), me) {
			n++
		}
	}
	return n
}

// fakeResolver answers from a table and records what it was asked.
type fakeResolver struct {
	mu    sync.Mutex
	table map[string][]string
	log   []string
}

func (r *fakeResolver) set(t map[string][]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.table = t
}

func (r *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, host)
	var out []netip.Addr
	for _, s := range r.table[host] {
		out = append(out, netip.MustParseAddr(s))
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

func (r *fakeResolver) asked() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log...)
}

// loopbackDialer dials only loopback addresses (tests never send traffic
// off this machine) and records every address it was given.
type loopbackDialer struct {
	mu  sync.Mutex
	log []netip.AddrPort
}

func (d *loopbackDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("test dialer: %q is not an address: %w", address, err)
	}
	d.mu.Lock()
	d.log = append(d.log, ap)
	d.mu.Unlock()
	if !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("test dialer: refusing non-loopback %s", ap)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, address)
}

func (d *loopbackDialer) dialed() []netip.AddrPort {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]netip.AddrPort(nil), d.log...)
}
