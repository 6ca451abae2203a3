package sandbox

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/sandbox/internal/initproc"
)

// initProc is a started init waiting for its spec: in its namespaces, with
// its uid mapped, in its cgroup. A launch takes one, made on the spot or,
// with Options.Prewarm, made ahead of need.
type initProc struct {
	id       string
	uid, gid int
	cmd      *exec.Cmd
	specW    *os.File // the spec goes here; held open afterwards (EOF: the host is gone)
	statusR  *os.File // the init's report and exit
	stdio    *os.File // host end of the socket that carries the tool's streams
	scratch  string   // per-launch directory: the root's mount point, the private workspace, the proxy socket
	cg       *cgroup
	cgErr    error
	ns       bool
	warnings []string
}

type spareKey struct{ uid, gid int }

// spareSlot is a spare init being made or ready.
type spareSlot struct {
	ready chan struct{}
	ip    *initProc
	err   error
}

// makeInit starts an init for the host uid and gid: in new namespaces, or,
// where none can be created and the tier allows it, without any.
func (l *Launcher) makeInit(uid, gid int) (*initProc, error) {
	root := os.Geteuid() == 0
	ip := &initProc{id: events.NewID()[:16], uid: uid, gid: gid, ns: true}
	useCgroup := root && l.cgErr == nil
	if useCgroup && l.cgroups.V2Available {
		// A v2 cgroup must exist first: the init is cloned into it.
		ip.cg, ip.cgErr = newCgroup(l.cgroups, "sandbox-"+ip.id)
	}
	err := error(unix.EPERM)
	if !l.noNamespaces {
		err = ip.start(l.opts.InitPath, nsAttr(uid, gid, root, ip.cg))
	}
	if err != nil && nsUnavailable(err) && !requires(l.required, MechUserNS) {
		ip.warnings = append(ip.warnings, "namespaces unavailable ("+err.Error()+"): running with Landlock, seccomp and limits only")
		ip.ns = false
		err = ip.start(l.opts.InitPath, plainAttr(uid, gid, root, ip.cg))
	}
	if err != nil {
		ip.cg.remove()
		if nsUnavailable(err) {
			return nil, fmt.Errorf("%w: cannot create namespaces: %v", ErrRefused, err)
		}
		return nil, fmt.Errorf("starting sandbox init: %w", err)
	}
	// The scratch directory, and the preparation the init can do before it
	// knows what it will run: mounting what every sandbox's root has.
	if err := ip.prepare(l, root); err != nil {
		ip.discard()
		return nil, err
	}
	if useCgroup && !l.cgroups.V2Available {
		// A v1 cgroup is joined after the start: slow (each move waits for
		// an RCU grace period), which is why a spare is worth having.
		cg, err := newCgroup(l.cgroups, "sandbox-"+ip.id)
		if err == nil {
			if err = cg.addProc(ip.cmd.Process.Pid); err != nil {
				cg.remove()
			}
		}
		if err != nil {
			ip.cgErr = err
		} else {
			ip.cg = cg
		}
	}
	return ip, nil
}

func (ip *initProc) start(path string, attr *syscall.SysProcAttr) error {
	specR, specW, err := os.Pipe()
	if err != nil {
		return err
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		closeAll(specR, specW)
		return err
	}
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		closeAll(specR, specW, statusR, statusW)
		return err
	}
	hostSock, initSock := os.NewFile(uintptr(sp[0]), "stdio"), os.NewFile(uintptr(sp[1]), "stdio-init")
	cmd := &exec.Cmd{
		Path: path,
		Args: []string{initproc.Arg0},
		// Nothing of Warden's environment. One P is plenty for the init
		// (it builds the sandbox, then waits and carries bytes) and
		// starts faster on a busy host.
		Env:         []string{"GOMAXPROCS=1"},
		ExtraFiles:  []*os.File{specR, statusW, initSock}, // fds 3, 4, 5
		SysProcAttr: attr,
	}
	if err := cmd.Start(); err != nil {
		closeAll(specR, specW, statusR, statusW, hostSock, initSock)
		return err
	}
	closeAll(specR, statusW, initSock)
	ip.cmd, ip.specW, ip.statusR, ip.stdio = cmd, specW, statusR, hostSock
	return nil
}

func (ip *initProc) prepare(l *Launcher, root bool) error {
	dir, err := os.MkdirTemp(l.opts.ScratchDir, "warden-sandbox-")
	if err != nil {
		return fmt.Errorf("creating sandbox scratch directory: %w", err)
	}
	ip.scratch = dir
	dirs := []string{dir, filepath.Join(dir, "root")}
	if !ip.ns {
		dirs = append(dirs, filepath.Join(dir, "tmp"))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("preparing sandbox scratch directory: %w", err)
		}
		if root {
			if err := os.Chown(d, ip.uid, ip.gid); err != nil {
				return fmt.Errorf("preparing sandbox scratch directory: %w", err)
			}
		}
	}
	prep := &initproc.Prep{}
	if ip.ns {
		prep = basePrep(filepath.Join(dir, "root"))
	}
	return initproc.WritePrep(ip.specW, prep)
}

// discard kills an init that will not be used.
func (ip *initProc) discard() {
	if ip == nil {
		return
	}
	if ip.cmd != nil && ip.cmd.Process != nil {
		_ = ip.cmd.Process.Kill()
		_ = ip.cmd.Wait()
	}
	closeAll(ip.specW, ip.statusR, ip.stdio)
	ip.cg.remove()
	if ip.scratch != "" {
		_ = os.RemoveAll(ip.scratch)
	}
}

// takeInit returns a spare init for uid and gid if one is ready (or being
// made), else makes one now.
func (l *Launcher) takeInit(uid, gid int) (*initProc, error) {
	if l.opts.Prewarm {
		key := spareKey{uid, gid}
		l.mu.Lock()
		slot := l.spares[key]
		delete(l.spares, key)
		l.mu.Unlock()
		if slot != nil {
			<-slot.ready
			if slot.err == nil {
				return slot.ip, nil
			}
		}
	}
	return l.makeInit(uid, gid)
}

// refill starts making a spare init for uid and gid, with Options.Prewarm.
func (l *Launcher) refill(uid, gid int) {
	if !l.opts.Prewarm {
		return
	}
	key := spareKey{uid, gid}
	l.mu.Lock()
	if l.closed || l.spares[key] != nil {
		l.mu.Unlock()
		return
	}
	slot := &spareSlot{ready: make(chan struct{})}
	l.spares[key] = slot
	l.mu.Unlock()
	// The slot has one owner after it is ready: takeInit if it removed the
	// slot from the map, else Close, which takes every slot still there.
	// refill cannot add a slot after Close (it checks closed under the same
	// lock), so this goroutine never discards: two discards of one init race
	// on its exec.Cmd.
	go func() {
		slot.ip, slot.err = l.makeInit(uid, gid)
		close(slot.ready)
	}()
}

// Close ends the launcher's spare inits (with Options.Prewarm). Running
// processes are not affected; they end with their contexts.
func (l *Launcher) Close() error {
	l.mu.Lock()
	l.closed = true
	slots := l.spares
	l.spares = map[spareKey]*spareSlot{}
	l.mu.Unlock()
	for _, s := range slots {
		<-s.ready
		if s.err == nil {
			s.ip.discard()
		}
	}
	return nil
}

// streams are the tool's standard streams as the init receives them, and
// what the host keeps of them.
type streams struct {
	child   [3]*os.File // sent to the init, then closed here
	stdin   *os.File    // host ends, for StartStdio
	stdout  *os.File
	copiers sync.WaitGroup // copying to the Spec's writers; waited for before Done
}

// openStreams prepares the tool's streams: pipes for StartStdio, else the
// Spec's files as they are, /dev/null for nil, and a pipe with a copying
// goroutine for any other reader or writer.
func openStreams(spec Spec, stdio bool) (*streams, error) {
	s := &streams{}
	var opened []*os.File
	fail := func(err error) (*streams, error) {
		closeAll(opened...)
		return nil, fmt.Errorf("preparing the sandbox's standard streams: %w", err)
	}
	devnull := func() (*os.File, error) {
		f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err == nil {
			opened = append(opened, f)
		}
		return f, err
	}
	if stdio {
		inR, inW, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			closeAll(inR, inW)
			return fail(err)
		}
		opened = append(opened, inR, inW, outR, outW)
		s.child[0], s.child[1], s.stdin, s.stdout = inR, outW, inW, outR
	} else {
		switch in := spec.Stdin.(type) {
		case nil:
			f, err := devnull()
			if err != nil {
				return fail(err)
			}
			s.child[0] = f
		case *os.File:
			s.child[0] = in
		default:
			r, w, err := os.Pipe()
			if err != nil {
				return fail(err)
			}
			opened = append(opened, r)
			s.child[0] = r
			go func() {
				_, _ = io.Copy(w, in)
				w.Close()
			}()
		}
		f, err := s.writer(spec.Stdout, devnull, &opened)
		if err != nil {
			return fail(err)
		}
		s.child[1] = f
	}
	f, err := s.writer(spec.Stderr, devnull, &opened)
	if err != nil {
		return fail(err)
	}
	s.child[2] = f
	return s, nil
}

func (s *streams) writer(w io.Writer, devnull func() (*os.File, error), opened *[]*os.File) (*os.File, error) {
	switch out := w.(type) {
	case nil:
		return devnull()
	case *os.File:
		return out, nil
	}
	r, wf, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	*opened = append(*opened, wf)
	s.copiers.Add(1)
	go func() {
		defer s.copiers.Done()
		_, _ = io.Copy(w, r)
		r.Close()
	}()
	return wf, nil
}

// send hands the child ends to the init and closes the host's copies of
// those the host opened (files given in the Spec stay open).
func (s *streams) send(sock *os.File, spec Spec, stdio bool) error {
	fds := []int{int(s.child[0].Fd()), int(s.child[1].Fd()), int(s.child[2].Fd())}
	err := unix.Sendmsg(int(sock.Fd()), []byte{'S'}, unix.UnixRights(fds...), nil, 0)
	s.closeChild(spec, stdio)
	if err != nil {
		return fmt.Errorf("passing the sandbox's standard streams: %w", err)
	}
	return nil
}

func (s *streams) closeChild(spec Spec, stdio bool) {
	given := map[*os.File]bool{}
	if !stdio {
		if f, ok := spec.Stdin.(*os.File); ok {
			given[f] = true
		}
		if f, ok := spec.Stdout.(*os.File); ok {
			given[f] = true
		}
	}
	if f, ok := spec.Stderr.(*os.File); ok {
		given[f] = true
	}
	for _, f := range s.child {
		if f != nil && !given[f] {
			f.Close()
		}
	}
}
