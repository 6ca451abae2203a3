package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/sandbox/internal/initproc"
	"github.com/warden-run/warden/tier"
)

// processPlatform is the Linux side of a Process.
type processPlatform struct {
	cmd      *exec.Cmd
	hostPipe *os.File        // write end of the spec pipe, held open: its EOF tells the init the host is gone
	statusR  *os.File        // read end of the init's status pipe
	copiers  *sync.WaitGroup // goroutines copying the tool's output to the Spec's writers
	uid, gid int             // the host identity the sandbox maps to
	cg       *cgroup
	proxy    *EgressProxy
	scratch  string
	pidNS    bool
	toolPID  int // in the init's PID namespace (the host's, without one)
	started  time.Time
}

func (l *Launcher) initPlatform() {
	if os.Geteuid() == 0 {
		l.cgroups, l.cgErr = findCgroups("/proc/self/mountinfo")
		if l.cgErr == nil {
			if n := sweepCgroups(l.cgroups, staleCgroupAge, time.Now()); n > 0 {
				l.logger.Info("removed empty sandbox cgroups left by earlier processes", "count", n)
			}
		}
	} else {
		l.cgErr = errors.New("cgroups need Warden to run as root")
	}
}

// Paths of the host's system that every sandbox sees read-only. /etc is
// not among them: only the files below are.
var (
	systemPaths = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}
	etcPaths    = []string{
		"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/ssl",
		"/etc/ca-certificates", "/etc/ca-certificates.conf", "/etc/pki", "/etc/alternatives",
		"/etc/localtime", "/etc/timezone", "/etc/protocols", "/etc/services",
		"/etc/mime.types", "/etc/os-release", "/etc/debian_version", "/etc/gai.conf",
	}
	devFiles = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"}
)

const (
	sandboxPath    = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	proxyPort      = 3128
	proxySocketDst = "/run/warden/egress.sock"
	hostname       = "sandbox"
)

type limits struct {
	memory int64
	cpu    float64
	pids   int
	files  int
	tmp    int64
	wall   time.Duration
}

func resolveLimits(c config.SandboxLimits) limits {
	l := limits{memory: int64(c.Memory), cpu: c.CPU, pids: c.Pids, files: c.OpenFiles, tmp: int64(c.Tmp), wall: c.WallClock}
	if l.memory == 0 {
		l.memory = defaultMemory
	}
	if l.cpu == 0 {
		l.cpu = defaultCPU
	}
	if l.pids == 0 {
		l.pids = defaultPids
	}
	if l.files == 0 {
		l.files = defaultOpenFiles
	}
	if l.tmp == 0 {
		l.tmp = defaultTmp
	}
	return l
}

// hostIdentity returns the host uid and gid that the sandbox's uid 0 maps
// to: the profile's user (default nobody) when Warden runs as root, Warden's
// own user otherwise. It never returns root.
func hostIdentity(name string) (int, int, error) {
	if os.Geteuid() != 0 {
		uid, gid := os.Getuid(), os.Getgid()
		if name != "" && name != strconv.Itoa(uid) && name != strconv.Itoa(uid)+":"+strconv.Itoa(gid) {
			if u, err := user.Current(); err != nil || u.Username != name {
				return 0, 0, fmt.Errorf("profile user %q: an unprivileged Warden can only run sandboxes as itself", name)
			}
		}
		return uid, gid, nil
	}
	if name == "" {
		name = "nobody"
	}
	var uid, gid int
	if u, g, ok := strings.Cut(name, ":"); ok || isDigits(name) {
		var err1, err2 error
		uid, err1 = strconv.Atoi(u)
		gid, err2 = uid, error(nil)
		if ok {
			gid, err2 = strconv.Atoi(g)
		}
		if err1 != nil || err2 != nil {
			return 0, 0, fmt.Errorf("profile user %q: not a uid[:gid]", name)
		}
	} else {
		u, err := user.Lookup(name)
		switch {
		case err != nil && name == "nobody":
			uid, gid = 65534, 65534
		case err != nil:
			return 0, 0, fmt.Errorf("profile user %q: %w", name, err)
		default:
			uid, _ = strconv.Atoi(u.Uid)
			gid, _ = strconv.Atoi(u.Gid)
		}
	}
	if uid == 0 || gid == 0 {
		return 0, 0, fmt.Errorf("%w: profile user %q would map the sandbox's root to the host's root", ErrRefused, name)
	}
	return uid, gid, nil
}

func isDigits(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

func (l *Launcher) start(ctx context.Context, spec Spec, stdio, probe bool) (*Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("starting sandbox: %w", err)
	}
	name := spec.Name
	if name == "" {
		name = "default"
	}
	prof := spec.Profile
	if err := prof.Validate(); err != nil {
		return nil, fmt.Errorf("sandbox profile %s: %w", name, err)
	}
	if len(spec.Args) == 0 {
		return nil, errors.New("starting sandbox: no command")
	}
	p := &Process{
		id:     events.NewID()[:16],
		mech:   newMechanisms(),
		done:   make(chan struct{}),
		labels: Labels{Profile: name, Agent: spec.Agent, Task: spec.Task, Tool: spec.Tool},
	}
	p.labels.Sandbox = p.id
	refuse := func(err error) (*Process, error) {
		if emitErr := l.emitLaunch(ctx, p, spec, err); emitErr != nil {
			l.logger.Error("recording sandbox refusal", "err", emitErr)
		}
		l.logger.Warn("sandbox refused", "sandbox", p.id, "profile", name, "err", err)
		return nil, err
	}

	workspace := spec.Workspace
	if workspace == "" {
		workspace = prof.Workspace
	}
	if workspace != "" {
		abs, err := filepath.Abs(workspace)
		if err != nil {
			return nil, fmt.Errorf("sandbox workspace: %w", err)
		}
		workspace = abs
		if fi, err := os.Stat(workspace); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("sandbox workspace %s: not a directory", workspace)
		}
	}
	exposed := append(append([]string{workspace}, prof.ReadOnly...), prof.ReadWrite...)
	if err := l.checkExposure(exposed...); err != nil {
		return refuse(err)
	}
	uid, gid, err := hostIdentity(prof.User)
	if err != nil {
		return refuse(err)
	}
	root := os.Geteuid() == 0
	lim := resolveLimits(prof.Limits)

	ok := false
	plat := &p.plat
	var strm *streams
	defer func() {
		if !ok {
			if plat.cmd != nil {
				p.killTree()
				_ = plat.cmd.Wait()
			}
			closeAll(plat.statusR, p.stdinFile(), p.stdoutFile())
			if strm != nil {
				strm.closeChild(spec, stdio)
			}
			plat.cleanup()
			l.refill(uid, gid)
		}
	}()
	mk := func(p string) error {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return err
		}
		if root {
			return os.Chown(p, uid, gid)
		}
		return nil
	}

	// The init: a spare one made ahead of need, or one started now (its
	// runtime boots while the host prepares the rest; it waits for the
	// spec).
	ip, err := l.takeInit(uid, gid)
	if err != nil {
		if errors.Is(err, ErrRefused) {
			return refuse(err)
		}
		return nil, err
	}
	useNS := ip.ns
	p.id, p.labels.Sandbox = ip.id, ip.id
	p.mech.Warnings = append(p.mech.Warnings, ip.warnings...)
	for _, w := range ip.warnings {
		l.logger.Warn("sandbox without namespaces", "sandbox", p.id, "detail", w)
	}
	plat.cmd, plat.hostPipe, plat.statusR, plat.pidNS, plat.started = ip.cmd, ip.specW, ip.statusR, useNS, time.Now()
	plat.cg, plat.uid, plat.gid = ip.cg, uid, gid
	defer ip.stdio.Close()

	// Resource limits: the cgroup's (as root), rlimits always.
	switch {
	case plat.cg != nil:
		if err := plat.cg.setLimits(cgroupLimits{Memory: lim.memory, CPU: lim.cpu, Pids: lim.pids}); err != nil {
			p.mech.Warnings = append(p.mech.Warnings, "cgroup: "+err.Error())
		}
		for m, d := range plat.cg.applied {
			p.mech.set(m, true, d)
		}
	case ip.cgErr != nil:
		p.mech.Warnings = append(p.mech.Warnings, "cgroup: "+ip.cgErr.Error())
		p.mech.Detail[MechCPULimit] = ip.cgErr.Error()
	case l.cgErr != nil:
		p.mech.Detail[MechCPULimit] = l.cgErr.Error()
	}

	strm, err = openStreams(spec, stdio)
	if err != nil {
		return nil, err
	}
	if stdio {
		p.stdin, p.stdout = strm.stdin, strm.stdout
	}
	plat.copiers = &strm.copiers

	plat.scratch = ip.scratch
	if workspace == "" {
		workspace = filepath.Join(plat.scratch, "work")
		if err := mk(workspace); err != nil {
			return nil, fmt.Errorf("preparing sandbox workspace: %w", err)
		}
	}

	// The egress proxy, reached from inside over a Unix socket.
	if prof.Network == config.NetworkEgress {
		sock := filepath.Join(plat.scratch, "egress.sock")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			return nil, fmt.Errorf("starting the sandbox's egress proxy: %w", err)
		}
		if root {
			if err := os.Chown(sock, uid, gid); err != nil {
				ln.Close()
				return nil, fmt.Errorf("starting the sandbox's egress proxy: %w", err)
			}
		}
		proxy, err := NewEgressProxy(EgressConfig{
			Rules: prof.Egress, Resolver: l.opts.Resolver, Dialer: l.opts.Dialer,
			Sink: l.opts.Sink, Logger: l.logger, Labels: p.labels,
			RequireRecord: l.preset.Audit == tier.AuditSync,
		})
		if err != nil {
			ln.Close()
			return nil, err
		}
		plat.proxy = proxy
		go func() {
			if err := proxy.Serve(ln); err != nil {
				l.logger.Error("sandbox egress proxy", "sandbox", p.id, "err", err)
			}
		}()
	}
	is := l.buildInitSpec(useNS, spec, prof, workspace, plat, lim, probe)

	// The spec and the streams; the init builds the sandbox and starts the
	// tool only on the go-ahead below.
	if err := initproc.WriteSpec(plat.hostPipe, is); err != nil {
		return nil, err
	}
	if err := strm.send(ip.stdio, spec, stdio); err != nil {
		return nil, err
	}
	strm.child = [3]*os.File{}

	// Host-side mechanisms are known now, before the tool exists.
	for _, m := range []string{MechUserNS, MechPIDNS, MechIPCNS, MechNetNS} {
		p.mech.set(m, is.Namespaces, "")
	}
	if is.Namespaces {
		p.mech.UIDMap = fmt.Sprintf("0 %d 1", uid)
	}
	p.mech.set(MechUnprivileged, uid != 0, fmt.Sprintf("host uid %d", uid))
	p.mech.set(MechEgress, is.Namespaces, egressDetail(prof, is.Namespaces))
	hostSide := []string{MechUserNS, MechPIDNS, MechIPCNS, MechNetNS, MechUnprivileged, MechEgress}
	if plat.cg != nil {
		hostSide = append(hostSide, MechCPULimit)
	}
	if missing := p.mech.Missing(intersect(l.required, hostSide)); len(missing) > 0 {
		return refuse(fmt.Errorf("%w at tier %s: %s not available", ErrRefused, l.preset.Tier, strings.Join(missing, ", ")))
	}

	if _, err := plat.hostPipe.Write([]byte{initproc.GoAhead}); err != nil {
		return nil, fmt.Errorf("starting sandbox: %w", err)
	}
	status := bufio.NewReader(plat.statusR)
	rep, err := readReport(ctx, plat.statusR, status)
	if err != nil || !rep.OK {
		if err == nil {
			err = fmt.Errorf("sandbox setup failed at %s: %s", rep.Stage, rep.Error)
			if strings.Contains(rep.Error, "required") {
				err = fmt.Errorf("%w at tier %s: %s", ErrRefused, l.preset.Tier, rep.Error)
			}
			p.mergeReport(rep)
		}
		return refuse(err)
	}
	p.mergeReport(rep)
	plat.toolPID = rep.ToolPID
	for _, m := range p.mech.Missing(allMechanisms) {
		if !requires(l.required, m) {
			p.mech.Warnings = append(p.mech.Warnings, m+" not in force")
		}
	}
	if missing := p.mech.Missing(l.required); len(missing) > 0 {
		return refuse(fmt.Errorf("%w at tier %s: %s not in force", ErrRefused, l.preset.Tier, strings.Join(missing, ", ")))
	}
	if err := l.emitLaunch(ctx, p, spec, nil); err != nil && l.preset.Audit == tier.AuditSync {
		return nil, err
	} else if err != nil {
		l.logger.Error("recording sandbox launch", "sandbox", p.id, "err", err)
	}
	if len(p.mech.Warnings) > 0 {
		l.logger.Warn("sandbox running with mechanisms missing", "sandbox", p.id, "profile", name, "warnings", strings.Join(p.mech.Warnings, "; "))
	}
	ok = true
	go l.monitor(ctx, p, status, lim.wall)
	return p, nil
}

// mergeReport adds what the init reports to what the host knows. A
// mechanism in force on either side stays in force (limits set both by a
// cgroup and an rlimit).
func (p *Process) mergeReport(r initproc.Report) {
	p.mech.LandlockABI = r.LandlockABI
	for m, on := range r.InForce {
		prev, had := p.mech.InForce[m]
		d := r.Detail[m]
		if had && prev {
			if on && d != "" {
				p.mech.Detail[m] += " + " + d
			}
			continue
		}
		p.mech.set(m, on, d)
	}
	p.mech.Warnings = append(p.mech.Warnings, r.Warnings...)
}

func egressDetail(prof config.SandboxProfile, ns bool) string {
	switch {
	case !ns:
		return "no network namespace: the host's network is reachable"
	case prof.Network == config.NetworkEgress:
		return "loopback only; allow-list proxy"
	}
	return "loopback only"
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// nsAttr starts the init in new user, mount, PID, IPC, UTS and network
// namespaces with the sandbox's uid 0 mapped to the host uid given.
func nsAttr(uid, gid int, root bool, cg *cgroup) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID |
			unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}},
		Setsid:      true,
		Pdeathsig:   syscall.SIGKILL,
	}
	if root {
		// Switch to the mapped (unprivileged) host uid before the init runs
		// and shed root's supplementary groups, which would otherwise keep
		// granting group access to the host's files.
		a.GidMappingsEnableSetgroups = true
		a.Credential = &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{}}
	}
	if cg != nil && cg.version == 2 && cg.fd != nil {
		a.UseCgroupFD, a.CgroupFD = true, int(cg.fd.Fd())
	}
	return a
}

// plainAttr starts the init without namespaces, as the profile's user when
// Warden is root.
func plainAttr(uid, gid int, root bool, cg *cgroup) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if root {
		a.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	if cg != nil && cg.version == 2 && cg.fd != nil {
		a.UseCgroupFD, a.CgroupFD = true, int(cg.fd.Fd())
	}
	return a
}

// nsUnavailable reports whether clone failed for want of namespaces.
func nsUnavailable(err error) bool {
	for _, e := range []error{unix.EPERM, unix.EINVAL, unix.ENOSPC, unix.EUSERS, unix.ENOSYS} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func requires(list []string, m string) bool {
	for _, x := range list {
		if x == m {
			return true
		}
	}
	return false
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if requires(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// readReport reads the init's first status line.
func readReport(ctx context.Context, f *os.File, br *bufio.Reader) (initproc.Report, error) {
	deadline := time.Now().Add(30 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = f.SetReadDeadline(deadline)
	defer f.SetReadDeadline(time.Time{})
	line, err := br.ReadBytes('\n')
	if err != nil {
		return initproc.Report{}, fmt.Errorf("sandbox init did not report: %w", err)
	}
	var sl initproc.StatusLine
	if err := json.Unmarshal(line, &sl); err != nil || sl.Report == nil {
		return initproc.Report{}, errors.New("sandbox init sent a malformed report")
	}
	return *sl.Report, nil
}

// buildInitSpec builds what the init needs. With ns, paths are as the tool sees
// them inside the root built from mounts; without, they are host paths.
func (l *Launcher) buildInitSpec(ns bool, spec Spec, prof config.SandboxProfile, workspace string, plat *processPlatform, lim limits, probe bool) *initproc.Spec {
	is := &initproc.Spec{
		Probe: probe, Namespaces: ns, NetNS: ns, Hostname: hostname,
		Args: spec.Args, Dir: "/workspace",
		Limits: initproc.Rlimits{NoFile: uint64(lim.files), NProc: uint64(lim.pids)},
	}
	if plat.cg == nil || plat.cg.applied[MechMemoryLimit] == "" {
		is.Limits.Data = uint64(lim.memory)
	}
	initApplied := []string{MechMountNS, MechPivotRoot, MechUTSNS, MechFDsClosed, MechNonDumpable,
		MechCapsDropped, MechNoNewPrivs, MechLandlockFS, MechSeccomp, MechFilesLimit}
	if plat.cg == nil || plat.cg.applied[MechPidsLimit] == "" {
		initApplied = append(initApplied, MechPidsLimit)
	}
	if is.Limits.Data > 0 {
		initApplied = append(initApplied, MechMemoryLimit)
	}
	if !ns {
		initApplied = []string{MechFDsClosed, MechNonDumpable, MechCapsDropped, MechNoNewPrivs, MechLandlockFS, MechSeccomp, MechFilesLimit}
	}
	is.Require = intersect(l.required, initApplied)

	env := map[string]string{"PATH": sandboxPath, "HOME": "/workspace", "TMPDIR": "/tmp"}
	if !ns {
		env["HOME"], env["TMPDIR"] = workspace, filepath.Join(plat.scratch, "tmp")
		is.Dir = workspace
	}
	for _, k := range prof.PassEnv {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	for k, v := range prof.Env {
		env[k] = v
	}

	var hosts strings.Builder
	hosts.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.255\t" + hostname + "\n")
	connect := []uint16{}
	if prof.Network == config.NetworkEgress && ns {
		ps := &initproc.Proxy{Socket: proxySocketDst, Port: proxyPort}
		connect = append(connect, proxyPort)
		n := 0
		for _, r := range prof.Egress {
			if strings.HasPrefix(r.Host, "*.") || isIPLiteral(r.Host) || n >= 250 {
				continue
			}
			n++
			addr := fmt.Sprintf("127.0.1.%d", n)
			fmt.Fprintf(&hosts, "%s\t%s\n", addr, r.Host)
			for _, port := range r.Ports {
				ps.Forwards = append(ps.Forwards, initproc.Forwarder{Addr: addr, Host: r.Host, Port: uint16(port)})
				connect = append(connect, uint16(port))
			}
		}
		is.Proxy = ps
		proxyURL := fmt.Sprintf("http://127.0.0.1:%d", proxyPort)
		for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"} {
			env[k] = proxyURL
		}
		env["NO_PROXY"], env["no_proxy"] = "localhost,127.0.0.1,::1", "localhost,127.0.0.1,::1"
	}
	for _, port := range prof.ListenPorts {
		connect = append(connect, uint16(port))
		is.Landlock.Bind = append(is.Landlock.Bind, uint16(port))
	}
	is.Landlock.Connect = dedupPorts(connect)
	for k, v := range env {
		is.Env = append(is.Env, k+"="+v)
	}
	sort.Strings(is.Env)

	if !ns {
		// Landlock alone: host paths.
		for _, p := range append(append([]string{}, systemPaths...), etcPaths...) {
			if _, err := os.Lstat(p); err == nil {
				is.Landlock.RO = append(is.Landlock.RO, p)
			}
		}
		is.Landlock.RO = append(is.Landlock.RO, prof.ReadOnly...)
		is.Landlock.RW = append([]string{workspace, filepath.Join(plat.scratch, "tmp")}, prof.ReadWrite...)
		is.Landlock.Dev = devFiles
		return is
	}

	// The mounts every sandbox has were sent ahead (basePrep); these
	// are the launch's own.
	is.Mounts = append(is.Mounts,
		initproc.Mount{Kind: initproc.MountTmpfs, Dst: "/tmp", Data: fmt.Sprintf("mode=1777,size=%d", lim.tmp)},
		initproc.Mount{Kind: initproc.MountTmpfs, Dst: "/dev/shm", Data: fmt.Sprintf("mode=1777,size=%d", min(lim.tmp, lim.memory))},
	)
	// The profile's paths come after /tmp, so that paths below /tmp are
	// mounted on the private tmpfs rather than hidden by it; parents first.
	type pathRW struct {
		p  string
		rw bool
	}
	var user []pathRW
	for _, p := range prof.ReadOnly {
		if underSystemPath(p) || underOther(p, prof.ReadOnly) {
			continue // already visible read-only, with the system paths or its parent
		}
		user = append(user, pathRW{p, false})
	}
	for _, p := range prof.ReadWrite {
		user = append(user, pathRW{p, true})
	}
	sort.Slice(user, func(i, j int) bool { return user[i].p < user[j].p })
	for _, u := range user {
		if _, err := os.Stat(u.p); err == nil {
			is.Mounts = append(is.Mounts, initproc.Mount{Kind: initproc.MountBind, Src: u.p, Dst: u.p, RW: u.rw})
		}
	}
	is.Mounts = append(is.Mounts, initproc.Mount{Kind: initproc.MountBind, Src: workspace, Dst: "/workspace", RW: true})
	if is.Proxy != nil {
		is.Mounts = append(is.Mounts, initproc.Mount{Kind: initproc.MountBind, Src: filepath.Join(plat.scratch, "egress.sock"), Dst: proxySocketDst, RW: true})
	}
	is.Files = []initproc.File{
		{Path: "/etc/passwd", Data: "root:x:0:0:sandbox:/workspace:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"},
		{Path: "/etc/group", Data: "root:x:0:\nnogroup:x:65534:\n"},
		{Path: "/etc/hosts", Data: hosts.String()},
		{Path: "/etc/hostname", Data: hostname + "\n"},
		{Path: "/etc/nsswitch.conf", Data: "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"},
		// No resolver is reachable: names outside /etc/hosts fail at once.
		{Path: "/etc/resolv.conf", Data: "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"},
	}
	is.Landlock.RO = []string{"/"}
	is.Landlock.RW = []string{"/workspace", "/tmp", "/dev/shm"}
	is.Landlock.RW = append(is.Landlock.RW, prof.ReadWrite...)
	is.Landlock.Dev = devFiles
	return is
}

// basePrep lists what every sandbox's root has, for the init to build
// before it knows what it will run: the host's system paths read-only, a few
// /etc files, a minimal /dev.
func basePrep(root string) *initproc.Prep {
	p := &initproc.Prep{Root: root}
	addHost := func(path string, rw bool) {
		fi, err := os.Lstat(path)
		if err != nil {
			return
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			if target, err := os.Readlink(path); err == nil {
				p.Mounts = append(p.Mounts, initproc.Mount{Kind: initproc.MountSymlink, Src: target, Dst: path})
			}
			return
		}
		p.Mounts = append(p.Mounts, initproc.Mount{Kind: initproc.MountBind, Src: path, Dst: path, RW: rw})
	}
	for _, path := range systemPaths {
		addHost(path, false)
	}
	for _, path := range etcPaths {
		// Small regular files are copied, not bound: cheaper to set up and
		// to tear down, and the sandbox sees a snapshot.
		if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && fi.Size() <= 1<<20 {
			p.Mounts = append(p.Mounts, initproc.Mount{Kind: initproc.MountCopy, Src: path, Dst: path})
			continue
		}
		addHost(path, false)
	}
	p.Mounts = append(p.Mounts, initproc.Mount{Kind: initproc.MountTmpfs, Dst: "/dev", Data: "mode=0755,size=64k"})
	for _, d := range devFiles {
		if _, err := os.Stat(d); err == nil {
			p.Mounts = append(p.Mounts, initproc.Mount{Kind: initproc.MountBind, Src: d, Dst: d, RW: true})
		}
	}
	p.Mounts = append(p.Mounts,
		initproc.Mount{Kind: initproc.MountSymlink, Src: "/proc/self/fd", Dst: "/dev/fd"},
		initproc.Mount{Kind: initproc.MountSymlink, Src: "/proc/self/fd/0", Dst: "/dev/stdin"},
		initproc.Mount{Kind: initproc.MountSymlink, Src: "/proc/self/fd/1", Dst: "/dev/stdout"},
		initproc.Mount{Kind: initproc.MountSymlink, Src: "/proc/self/fd/2", Dst: "/dev/stderr"},
	)
	return p
}

// underSystemPath reports whether p lies within one of the system paths
// every root mounts read-only.
func underSystemPath(p string) bool {
	for _, s := range systemPaths {
		if within(filepath.Clean(p), s) {
			return true
		}
	}
	return false
}

// underOther reports whether p lies within another of paths: binding p
// again inside that read-only bind would fail (its mount point cannot be
// made there), and is not needed.
func underOther(p string, paths []string) bool {
	p = filepath.Clean(p)
	for _, q := range paths {
		if q = filepath.Clean(q); q != p && within(p, q) {
			return true
		}
	}
	return false
}

func isIPLiteral(h string) bool {
	_, ok := parseIPish(h)
	return ok
}

func dedupPorts(ps []uint16) []uint16 {
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	out := ps[:0]
	for i, p := range ps {
		if i == 0 || p != ps[i-1] {
			out = append(out, p)
		}
	}
	return out
}

// monitor waits for the init, enforces the wall clock and the context, and
// reports how the process ended.
func (l *Launcher) monitor(ctx context.Context, p *Process, status *bufio.Reader, wall time.Duration) {
	plat := &p.plat
	exitCh := make(chan *initproc.Exit, 1)
	go func() {
		var ex *initproc.Exit
		for {
			line, err := status.ReadBytes('\n')
			var sl initproc.StatusLine
			if len(line) > 0 && json.Unmarshal(line, &sl) == nil && sl.Exit != nil {
				ex = sl.Exit
			}
			if err != nil {
				break
			}
		}
		exitCh <- ex
	}()
	waitCh := make(chan error, 1)
	go func() { waitCh <- plat.cmd.Wait() }()
	var timeout <-chan time.Time
	if wall > 0 {
		t := time.NewTimer(wall)
		defer t.Stop()
		timeout = t.C
	}
	ctxDone := ctx.Done()
	var waitErr error
wait:
	for {
		select {
		case <-ctxDone:
			p.Kill(ExitSessionEnd, "context ended")
			ctxDone = nil
		case <-timeout:
			p.Kill(ExitTimeout, "wall-clock limit "+wall.String())
			timeout = nil
		case waitErr = <-waitCh:
			break wait
		}
	}
	ex := <-exitCh
	plat.statusR.Close()
	if plat.copiers != nil {
		plat.copiers.Wait()
	}
	p.exit = l.exitOf(p, ex, waitErr)
	plat.cleanup()
	l.emitExit(p)
	close(p.done)
	// The next spare is made once this sandbox is gone, not while it
	// starts or runs: on two cores, making it alongside would slow both.
	l.refill(p.plat.uid, p.plat.gid)
}

func (l *Launcher) exitOf(p *Process, ex *initproc.Exit, waitErr error) Exit {
	p.mu.Lock()
	kr, kd := p.killReason, p.killDetail
	p.mu.Unlock()
	e := Exit{Duration: time.Since(p.plat.started)}
	if ex != nil {
		e.Code = ex.Code
		if ex.Signal != 0 {
			e.Signal = unix.SignalName(syscall.Signal(ex.Signal))
			e.Code = 128 + ex.Signal
		}
	}
	switch {
	case kr != "":
		e.Reason, e.Detail = kr, kd
		if ex == nil && e.Code == 0 {
			e.Code, e.Signal = 137, "SIGKILL"
		}
	case p.plat.cg.oomKilled():
		e.Reason, e.Detail = ExitMemory, "the cgroup's memory limit was reached"
		if e.Code == 0 {
			e.Code = 137
		}
	case ex != nil && ex.Exited:
		e.Reason = ExitNormal
	case ex != nil:
		e.Reason = ExitSignaled
	default:
		e.Reason, e.Code = ExitSignaled, 137
		e.Detail = "the sandbox's init ended without reporting"
		if waitErr != nil {
			e.Detail += ": " + waitErr.Error()
		}
	}
	return e
}

func (p *Process) stdinFile() *os.File {
	f, _ := p.stdin.(*os.File)
	return f
}

func (p *Process) stdoutFile() *os.File {
	f, _ := p.stdout.(*os.File)
	return f
}

// killTree kills every process of the sandbox: SIGKILL to the init ends its
// PID namespace, and with it every process inside.
func (p *Process) killTree() {
	plat := &p.plat
	plat.cg.kill()
	if plat.cmd != nil && plat.cmd.Process != nil {
		_ = plat.cmd.Process.Signal(syscall.SIGKILL)
	}
	if !plat.pidNS && plat.toolPID > 0 {
		_ = unix.Kill(-plat.toolPID, unix.SIGKILL)
		_ = unix.Kill(plat.toolPID, unix.SIGKILL)
	}
}

// terminate asks the tool to end: the init forwards SIGTERM.
func (p *Process) terminate() {
	if p.plat.cmd != nil && p.plat.cmd.Process != nil {
		_ = p.plat.cmd.Process.Signal(syscall.SIGTERM)
	}
}

func (plat *processPlatform) cleanup() {
	if plat.proxy != nil {
		plat.proxy.Close()
	}
	if plat.hostPipe != nil {
		plat.hostPipe.Close()
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // rmdir of a cgroup waits on the kernel; overlap it with the rest
		defer wg.Done()
		plat.cg.remove()
	}()
	defer wg.Wait()
	if plat.scratch != "" {
		if err := os.RemoveAll(plat.scratch); err != nil {
			// A private workspace can hold files the tool made unremovable
			// (mode 0); make everything writable and try again.
			_ = filepath.Walk(plat.scratch, func(p string, _ os.FileInfo, _ error) error {
				_ = os.Chmod(p, 0o700)
				return nil
			})
			_ = os.RemoveAll(plat.scratch)
		}
	}
}
