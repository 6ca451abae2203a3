package initproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Maybe turns this process into a sandbox's init if the host started it as
// one (argv[0] is Arg0), and never returns in that case; otherwise it
// returns at once.
func Maybe() {
	if len(os.Args) == 0 || os.Args[0] != Arg0 {
		return
	}
	os.Exit(Run())
}

// init calls Maybe as early as Go allows. Packages are initialised in
// import-path order as soon as their imports are, and this one imports
// little (no net/http, no configuration, nothing of Warden's), so in the
// warden binary it runs before most of the heavy package initialisation
// that the sandbox's init has no use for. main still calls MaybeInit first
// thing, for binaries where this runs late.
func init() { Maybe() }

// Exit statuses of the init when it could not run the tool.
const (
	exitInitFailed = 125 // setting up the sandbox failed; the report says why
	exitHostGone   = 124
)

// initState is the init's working state; it lives for one run of Run.
type initState struct {
	spec    *Spec
	status  *os.File
	report  Report
	require map[string]bool
}

func (st *initState) in(name string, ok bool, detail string) {
	st.report.InForce[name] = ok
	if detail != "" {
		st.report.Detail[name] = detail
	}
	if !ok && !st.require[name] {
		st.report.Warnings = append(st.report.Warnings, fmt.Sprintf("%s not in force: %s", name, detail))
	}
}

// fail records why the init gives up and returns its exit status.
func (st *initState) fail(stage string, err error) int {
	st.report.OK = false
	st.report.Stage = stage
	st.report.Error = err.Error()
	st.send(StatusLine{Report: &st.report})
	return exitInitFailed
}

func (st *initState) send(l StatusLine) {
	b, err := json.Marshal(l)
	if err != nil {
		return
	}
	_, _ = st.status.Write(append(b, '\n'))
}

func Run() int {
	// The main goroutine keeps the main thread for itself: the thread that
	// is confined below must be another one, or the init's leader would
	// share the tool's Landlock domain and seccomp filter (and the tool
	// could signal it).
	runtime.LockOSThread()
	// No garbage collection while the sandbox is built (a few MiB at
	// most); the default resumes once the tool runs and the init only
	// carries bytes.
	gcPercent := debug.SetGCPercent(-1)
	// Every descriptor the host let through, other than the spec and status
	// pipes, is made close-on-exec before anything else happens, so that
	// nothing inherited reaches the tool (escape test: inherited fds).
	fdsClosed := unix.CloseRange(statusFD+1, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	unix.CloseOnExec(specFD)
	unix.CloseOnExec(statusFD)
	// Non-dumpable: the tool runs as the same uid, and must not read or
	// write this process's memory through /proc/1/mem, nor its descriptors.
	dumpErr := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)

	// The seccomp filter depends on nothing the host sends: a spare init
	// builds it while it waits.
	filter, filterErr := seccompFilter()
	status := os.NewFile(statusFD, "status")
	specFile := os.NewFile(specFD, "spec")
	if status == nil || specFile == nil {
		return exitInitFailed
	}
	st := &initState{status: status, report: Report{InForce: map[string]bool{}, Detail: map[string]string{}}}
	prep, err := readPrep(specFile)
	if err != nil {
		return st.fail("spec", err)
	}
	var rootErr error
	if prep.Root != "" {
		rootErr = beginRoot(prep)
	}
	spec, err := ReadSpec(specFile)
	if err != nil {
		return st.fail("spec", err)
	}
	st.spec = spec
	// The tool's standard streams arrive over a socket, not as the init's
	// own 0, 1 and 2: an init can be started before anyone knows where the
	// tool's output goes (a pre-started spare).
	stdio, err := recvStdio()
	if err != nil {
		return st.fail("stdio", err)
	}
	st.require = map[string]bool{}
	for _, r := range spec.Require {
		st.require[r] = true
	}
	st.in(MechFDsClosed, fdsClosed == nil, errString(fdsClosed))
	st.in(MechNonDumpable, dumpErr == nil, errString(dumpErr))
	if err := st.checkRequired(MechFDsClosed, MechNonDumpable); err != nil {
		return st.fail("init", err)
	}

	if spec.Namespaces {
		err := rootErr
		if prep.Root == "" {
			err = errors.New("no root to build on")
		}
		if err == nil {
			err = finishRoot(prep.Root, spec)
		}
		if err != nil {
			// In new namespaces with a half-built root: never run the tool
			// here, whatever the tier.
			st.in(MechMountNS, false, err.Error())
			st.in(MechPivotRoot, false, err.Error())
			return st.fail("root", err)
		}
		st.in(MechMountNS, true, "")
		st.in(MechPivotRoot, true, "")
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			st.in(MechUTSNS, false, err.Error())
		} else {
			st.in(MechUTSNS, true, "")
		}
		if spec.NetNS {
			if err := loopbackUp(); err != nil {
				return st.fail("network", fmt.Errorf("bringing up loopback: %w", err))
			}
		}
	}
	if err := st.checkRequired(MechUTSNS); err != nil {
		return st.fail("uts", err)
	}
	if spec.Proxy != nil {
		if err := startForwarders(spec.Proxy); err != nil {
			return st.fail("egress", err)
		}
	}
	if err := unix.Prlimit(0, unix.RLIMIT_CORE, &unix.Rlimit{}, nil); err != nil {
		return st.fail("limits", fmt.Errorf("setting core dump limit: %w", err))
	}

	// Everything the confined thread needs is prepared here, on an
	// unconfined thread: the ruleset, the filter, the tool's path.
	abi := LandlockABI()
	st.report.LandlockABI = abi
	rulesetFD, rulesetFlags := -1, uint32(0)
	if abi > 0 {
		fd, flags, err := landlockRuleset(spec.Landlock)
		if err != nil {
			st.in(MechLandlockFS, false, err.Error())
			if st.require[MechLandlockFS] {
				return st.fail("landlock", err)
			}
		} else {
			rulesetFD, rulesetFlags = fd, flags
			defer unix.Close(fd)
		}
	} else {
		st.in(MechLandlockFS, false, "the kernel has no Landlock")
	}
	if filterErr != nil {
		st.in(MechSeccomp, false, filterErr.Error())
		if st.require[MechSeccomp] {
			return st.fail("seccomp", filterErr)
		}
	}
	var argv0 string
	if !spec.Probe {
		if len(spec.Args) == 0 {
			return st.fail("exec", errors.New("no command to run"))
		}
		argv0, err = lookPath(spec.Args[0], envValue(spec.Env, "PATH"))
		if err != nil {
			return st.fail("exec", err)
		}
	}

	if err := st.checkReported(); err != nil {
		return st.fail("require", err)
	}
	// Wait for the host's go-ahead: until it comes, this process may not
	// be in its cgroup yet. EOF means the host refused or went away.
	var goByte [1]byte
	if _, err := io.ReadFull(specFile, goByte[:]); err != nil || goByte[0] != GoAhead {
		return st.fail("start", errors.New("the host did not give the go-ahead"))
	}

	type started struct {
		pid int
		err error
	}
	ch := make(chan started, 1)
	var undo []loweredLimit
	go func() {
		// This goroutine's thread is confined below and is never unlocked:
		// when the goroutine returns, the runtime ends the thread, so no
		// other goroutine ever runs confined (or half-confined) code.
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			ch <- started{err: errors.New("the confined thread is the init's main thread")}
			return
		}
		// The limits are lowered before the filter goes on: after it, this
		// thread may no longer change them. They are restored by the main
		// thread once the tool has started.
		undo = lowerRlimits(spec.Limits)
		if err := confineThread(rulesetFD, rulesetFlags, filter, st.in, st.require); err != nil {
			ch <- started{err: err}
			return
		}
		runtime.KeepAlive(filter)
		if reportRlimits(undo, st.report.InForce[MechSeccomp], st.in) {
			if err := st.checkReported(); err != nil {
				ch <- started{err: err}
				return
			}
		}
		if spec.Probe {
			ch <- started{}
			return
		}
		pid, err := syscall.ForkExec(argv0, spec.Args, &syscall.ProcAttr{
			Dir:   spec.Dir,
			Env:   spec.Env,
			Files: []uintptr{uintptr(stdio[0]), uintptr(stdio[1]), uintptr(stdio[2])},
			// A session of its own: the tool has no controlling terminal,
			// so TIOCSTI is refused even without the seccomp rule.
			Sys: &syscall.SysProcAttr{Setsid: true},
		})
		ch <- started{pid: pid, err: err}
	}()
	res := <-ch
	restoreRlimits(undo)
	// The tool has its copies; the init keeps none, so the host sees EOF on
	// the tool's output as soon as the tool (and its children) close it.
	for _, fd := range stdio {
		unix.Close(fd)
	}
	if res.err != nil {
		return st.fail("exec", res.err)
	}
	if abi >= 4 && rulesetFD >= 0 && st.report.InForce[MechLandlockFS] {
		st.in(MechLandlockNet, true, fmt.Sprintf("ABI %d", abi))
	} else {
		st.in(MechLandlockNet, false, fmt.Sprintf("Landlock ABI %d has no TCP rules", abi))
	}
	if abi >= 6 && rulesetFD >= 0 && st.report.InForce[MechLandlockFS] {
		st.in(MechLandlockScoped, true, fmt.Sprintf("ABI %d", abi))
	} else {
		st.in(MechLandlockScoped, false, fmt.Sprintf("Landlock ABI %d has no scoping", abi))
	}
	debug.SetGCPercent(gcPercent)
	st.report.OK = true
	st.report.ToolPID = res.pid
	st.send(StatusLine{Report: &st.report})
	if spec.Probe {
		return 0
	}
	return st.supervise(res.pid, specFile)
}

// checkReported fails if a required mechanism has been reported not in
// force; mechanisms not reported yet are left to the code that applies them.
func (st *initState) checkReported() error {
	for _, m := range st.spec.Require {
		if on, reported := st.report.InForce[m]; reported && !on {
			return fmt.Errorf("%s is required and not in force: %s", m, st.report.Detail[m])
		}
	}
	return nil
}

func (st *initState) checkRequired(names ...string) error {
	for _, n := range names {
		if st.require[n] && !st.report.InForce[n] {
			return fmt.Errorf("%s is required and not in force: %s", n, st.report.Detail[n])
		}
	}
	return nil
}

// supervise forwards signals to the tool, reaps every process (the init is
// PID 1 of its namespace), and exits with the tool: the kernel then kills
// whatever the tool left behind. If the host goes away (EOF on the spec
// pipe), the tool is killed.
func (st *initState) supervise(tool int, host *os.File) int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2)
	go func() {
		for s := range sigs {
			if sig, ok := s.(syscall.Signal); ok {
				_ = unix.Kill(tool, sig)
			}
		}
	}()
	go func() {
		_, _ = io.Copy(io.Discard, host)
		// The host is gone: nobody supervises this sandbox any more.
		_ = unix.Kill(-tool, unix.SIGKILL)
		_ = unix.Kill(tool, unix.SIGKILL)
		os.Exit(exitHostGone)
	}()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			st.send(StatusLine{Exit: &Exit{Exited: false, Code: exitInitFailed}})
			return exitInitFailed
		}
		if pid != tool {
			continue
		}
		ex := &Exit{}
		code := 0
		switch {
		case ws.Exited():
			ex.Exited, ex.Code = true, ws.ExitStatus()
			code = ex.Code
		case ws.Signaled():
			ex.Signal = int(ws.Signal())
			code = 128 + ex.Signal
		}
		st.send(StatusLine{Exit: ex})
		if !st.spec.Namespaces {
			// Without a PID namespace nothing kills the tool's leftovers
			// for us: take its process group down.
			_ = unix.Kill(-tool, unix.SIGKILL)
		}
		return code
	}
}

// A loweredLimit is one of the init's rlimits lowered for the tool to
// inherit: its value before, to restore, or the error that refused it.
type loweredLimit struct {
	res          int
	old          unix.Rlimit
	mech, detail string
	err          error
}

// lowerRlimits lowers the soft limits the tool is to inherit. Rlimits are per
// process and copied at fork: the init lowers its own just before starting
// the tool and restores them at once (restoreRlimits), so that its own
// threads and memory are held to the tool's limits only for that moment.
//
// Only the soft limits are lowered. Raising a hard limit again needs
// CAP_SYS_RESOURCE in the host's user namespace, which an unprivileged init
// lacks: a lowered hard limit would hold the init to the tool's budget for
// good, and a Go runtime outgrows a small memory budget (the init then dies
// without reporting). The tool cannot raise its soft limits either: the
// seccomp filter refuses setrlimit and every prlimit64 that sets a limit, so
// reportRlimits counts the limits in force only when the filter is.
func lowerRlimits(l Rlimits) []loweredLimit {
	var out []loweredLimit
	lower := func(res int, v uint64, mech, detail string) {
		r := loweredLimit{res: res, mech: mech, detail: detail}
		if r.err = unix.Prlimit(0, res, nil, &r.old); r.err == nil {
			r.err = setRlimit(res, unix.Rlimit{Cur: min(v, r.old.Max), Max: r.old.Max})
		}
		out = append(out, r)
	}
	if l.NoFile > 0 {
		lower(unix.RLIMIT_NOFILE, l.NoFile, MechFilesLimit, fmt.Sprintf("rlimit %d", l.NoFile))
	}
	if l.NProc > 0 {
		lower(unix.RLIMIT_NPROC, l.NProc, MechPidsLimit, fmt.Sprintf("rlimit %d", l.NProc))
	}
	if l.Data > 0 {
		lower(unix.RLIMIT_DATA, l.Data, MechMemoryLimit, fmt.Sprintf("rlimit data %d", l.Data))
	}
	return out
}

// reportRlimits records each lowered limit's outcome and says whether any is
// not in force.
func reportRlimits(lowered []loweredLimit, seccompInForce bool, in func(string, bool, string)) (failed bool) {
	for _, r := range lowered {
		switch {
		case r.err != nil:
			in(r.mech, false, r.err.Error())
		case !seccompInForce:
			in(r.mech, false, r.detail+" is a soft limit the tool could raise: seccomp is not in force")
		default:
			in(r.mech, true, r.detail)
			continue
		}
		failed = true
	}
	return failed
}

// restoreRlimits gives the init back the limits lowerRlimits lowered. It must
// run on an unconfined thread: the seccomp filter refuses the call.
func restoreRlimits(lowered []loweredLimit) {
	for _, r := range lowered {
		if r.err == nil {
			_ = setRlimit(r.res, r.old)
		}
	}
}

// setRlimit sets one of the init's own limits. The open-files limit goes
// through syscall.Setrlimit, not unix: that keeps the Go runtime's record of
// it right, so the runtime does not put its original soft limit back in the
// child it starts.
func setRlimit(res int, lim unix.Rlimit) error {
	if res == unix.RLIMIT_NOFILE {
		return syscall.Setrlimit(res, &syscall.Rlimit{Cur: lim.Cur, Max: lim.Max})
	}
	return unix.Prlimit(0, res, &lim, nil)
}

// loopbackUp brings up lo, the only interface of the sandbox's network
// namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// lookPath finds a command the way a shell would, in the sandbox's PATH.
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && unix.Access(p, unix.X_OK) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: command not found in the sandbox (PATH=%s)", name, path)
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// recvStdio receives the tool's stdin, stdout and stderr from the host.
func recvStdio() ([3]int, error) {
	var fds [3]int
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(3*4))
	_, oobn, _, _, err := unix.Recvmsg(stdioFD, buf, oob, unix.MSG_CMSG_CLOEXEC)
	unix.Close(stdioFD)
	if err != nil {
		return fds, fmt.Errorf("receiving the tool's standard streams: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return fds, errors.New("receiving the tool's standard streams: malformed message")
	}
	got, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(got) != 3 {
		for _, fd := range got {
			unix.Close(fd)
		}
		return fds, errors.New("receiving the tool's standard streams: want three descriptors")
	}
	copy(fds[:], got)
	return fds, nil
}
