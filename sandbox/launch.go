package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/tier"
)

// Options configure a Launcher.
type Options struct {
	// Tier decides what happens when a mechanism is unavailable: Foundation
	// runs with a logged warning, Advanced and Optimized refuse.
	Tier tier.Tier
	// Sink receives an event per launch, per exit and per egress
	// connection. Required. At tiers whose audit mode is sync, a launch or a
	// connection whose event cannot be recorded is refused.
	Sink   events.Sink
	Logger *slog.Logger
	// DataDir is Warden's data directory. It, and the invoking user's home,
	// are never exposed in a sandbox: a profile that would expose them is
	// refused.
	DataDir string
	// ScratchDir holds per-launch directories (the root's mount point, the
	// private workspace, the proxy socket). Default: the system temp dir.
	ScratchDir string
	// InitPath is the binary re-executed as the sandbox's init; it must call
	// MaybeInit first thing. Default: /proc/self/exe.
	InitPath string
	// Resolver and Dialer serve the egress proxy (defaults: the system's).
	Resolver Resolver
	Dialer   Dialer
	// Prewarm keeps one init started ahead of need per host uid, in its
	// namespaces and cgroup, so that a launch skips creating the process,
	// starting its runtime and moving it into a cgroup. The spare is one
	// idle process; Close ends it. For long-lived launchers (the gateway).
	Prewarm bool
}

// Launcher starts sandboxed processes. It is safe for concurrent use.
type Launcher struct {
	opts      Options
	preset    tier.Preset
	required  []string
	logger    *slog.Logger
	forbidden []string
	cgroups   cgroupMounts
	cgErr     error
	mu        sync.Mutex
	spares    map[spareKey]*spareSlot
	closed    bool
	// noNamespaces makes every launch behave as if the host could not
	// create namespaces (tests of the fallback use it).
	noNamespaces bool
}

// Spec is one thing to run.
type Spec struct {
	// Name is the profile's name, for events ("default" for the built-in).
	Name    string
	Profile config.SandboxProfile
	Args    []string
	// Workspace, if set, overrides the profile's workspace.
	Workspace string
	// Stdin, Stdout and Stderr are the process's standard streams for
	// Start (nil: /dev/null). StartStdio replaces Stdin and Stdout with
	// pipes.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Labels name the agent, task and tool the process serves, for events.
	Agent, Task, Tool string
}

// DefaultProfile is the profile used when none is named and warden.yaml
// defines no "default": no network, read-only system paths, a private
// workspace, nothing of the host's home or Warden's data directory.
func DefaultProfile() config.SandboxProfile {
	return config.SandboxProfile{Network: config.NetworkNone}
}

// Defaults for limits a profile leaves at zero.
const (
	defaultMemory    = 1 << 30
	defaultCPU       = 1.0
	defaultPids      = 256
	defaultOpenFiles = 1024
	defaultTmp       = 64 << 20
)

// ExitReason says why a sandboxed process ended.
type ExitReason string

// Exit reasons.
const (
	ExitNormal      ExitReason = "exited"       // the tool exited by itself; see Code
	ExitSignaled    ExitReason = "signaled"     // a signal Warden did not send ended it
	ExitMemory      ExitReason = "memory_limit" // killed for exceeding its memory limit
	ExitTimeout     ExitReason = "timeout"      // its wall-clock limit passed
	ExitSessionEnd  ExitReason = "session_end"  // its context ended or it was stopped
	ExitContained   ExitReason = "contained"    // a containment action killed it
	ExitSetupFailed ExitReason = "setup_failed" // the sandbox could not be built
)

// Exit is how a sandboxed process ended.
type Exit struct {
	Reason   ExitReason
	Code     int    // exit status, for ExitNormal
	Signal   string // for signal deaths
	Detail   string
	Duration time.Duration
}

// Success reports whether the tool exited by itself with status 0.
func (e Exit) Success() bool { return e.Reason == ExitNormal && e.Code == 0 }

// ExitCode is the status a shell would report: the code, or 128 plus the
// signal number, or 125 when the sandbox failed.
func (e Exit) ExitCode() int {
	switch e.Reason {
	case ExitNormal:
		return e.Code
	case ExitSetupFailed:
		return 125
	}
	if e.Code != 0 {
		return e.Code
	}
	return 137
}

func (e Exit) String() string {
	switch e.Reason {
	case ExitNormal:
		return fmt.Sprintf("exited with status %d", e.Code)
	case ExitSetupFailed:
		return "sandbox setup failed: " + e.Detail
	}
	s := string(e.Reason)
	if e.Signal != "" {
		s += " (" + e.Signal + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// ErrRefused is returned (wrapped) when a launch is refused because a
// mechanism the tier requires is not available.
var ErrRefused = errors.New("sandbox refused")

// New returns a Launcher. It reads the host's cgroup layout once.
func New(o Options) (*Launcher, error) {
	if o.Sink == nil {
		return nil, errors.New("sandbox launcher: no event sink")
	}
	if o.Tier == 0 {
		o.Tier = tier.Foundation
	}
	if !o.Tier.Valid() {
		return nil, fmt.Errorf("sandbox launcher: invalid tier %d", int(o.Tier))
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ScratchDir == "" {
		o.ScratchDir = os.TempDir()
	}
	if o.InitPath == "" {
		o.InitPath = "/proc/self/exe"
	}
	l := &Launcher{opts: o, preset: tier.For(o.Tier), logger: o.Logger, spares: map[spareKey]*spareSlot{}}
	l.required = Required(l.preset)
	for _, p := range []string{o.DataDir, os.Getenv("HOME"), userHome()} {
		if p == "" {
			continue
		}
		if abs, err := filepath.Abs(p); err == nil && abs != "/" {
			if r, err := filepath.EvalSymlinks(abs); err == nil {
				abs = r
			}
			l.forbidden = append(l.forbidden, abs)
		}
	}
	l.initPlatform()
	return l, nil
}

// RequiredMechanisms returns what this launcher's tier refuses to run without.
func (l *Launcher) RequiredMechanisms() []string { return append([]string(nil), l.required...) }

// checkExposure refuses host paths that would expose the invoking user's
// home or Warden's data directory (or a parent of either).
func (l *Launcher) checkExposure(paths ...string) error {
	for _, p := range paths {
		if p == "" {
			continue
		}
		real := p
		if r, err := filepath.EvalSymlinks(p); err == nil {
			real = r
		}
		for _, f := range l.forbidden {
			for _, c := range []string{p, real} {
				if within(c, f) || within(f, c) {
					return fmt.Errorf("%w: %s would expose %s (the invoking user's home or Warden's data directory)", ErrRefused, p, f)
				}
			}
		}
	}
	return nil
}

// within reports whether p is dir or lies below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// Process is one running sandboxed process and its init.
type Process struct {
	id     string
	labels Labels
	mech   Mechanisms
	stdin  io.WriteCloser
	stdout io.ReadCloser
	done   chan struct{}
	exit   Exit

	mu         sync.Mutex
	killReason ExitReason
	killDetail string

	plat processPlatform
}

// ID is the launch's id, as it appears in events.
func (p *Process) ID() string { return p.id }

// Mechanisms returns what confined this launch.
func (p *Process) Mechanisms() Mechanisms { return p.mech }

// Stdin is the process's standard input, for processes started with
// StartStdio (nil otherwise). Closing it signals end of input.
func (p *Process) Stdin() io.WriteCloser { return p.stdin }

// Stdout is the process's standard output, for processes started with
// StartStdio (nil otherwise). It reaches EOF when the process tree is gone.
func (p *Process) Stdout() io.ReadCloser { return p.stdout }

// Done is closed once the process has ended and been cleaned up.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait blocks until the process has ended and returns how.
func (p *Process) Wait() Exit {
	<-p.done
	return p.exit
}

// Kill ends the whole process tree at once. The first reason given is the
// one reported; detail says why (a rule id, a session id).
func (p *Process) Kill(reason ExitReason, detail string) {
	p.mu.Lock()
	if p.killReason == "" {
		p.killReason, p.killDetail = reason, detail
	}
	p.mu.Unlock()
	p.killTree()
}

// Stop asks the tool to end (SIGTERM), and kills the tree after grace.
func (p *Process) Stop(grace time.Duration) Exit {
	p.mu.Lock()
	if p.killReason == "" {
		p.killReason = ExitSessionEnd
	}
	p.mu.Unlock()
	p.terminate()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.killTree()
	}
	return p.Wait()
}

// Run starts spec with Start and waits for it to end.
func (l *Launcher) Run(ctx context.Context, spec Spec) (Exit, *Process, error) {
	p, err := l.Start(ctx, spec)
	if err != nil {
		return Exit{Reason: ExitSetupFailed, Detail: err.Error()}, nil, err
	}
	return p.Wait(), p, nil
}

// StartStdio starts spec with its standard input and output as pipes, for
// use as an MCP stdio transport: write requests to p.Stdin(), read responses
// from p.Stdout().
func (l *Launcher) StartStdio(ctx context.Context, spec Spec) (*Process, error) {
	return l.start(ctx, spec, true, false)
}

// Start starts spec with the standard streams it names. The process is
// killed (the whole tree) when ctx ends, when its wall-clock limit passes,
// or by Kill; Wait reports how it ended.
func (l *Launcher) Start(ctx context.Context, spec Spec) (*Process, error) {
	return l.start(ctx, spec, false, false)
}

// Check launches an empty sandbox of the default profile with every
// mechanism attempted and reports what was in force. It runs no tool.
func (l *Launcher) Check(ctx context.Context) (Mechanisms, error) {
	p, err := l.start(ctx, Spec{Name: "check", Profile: DefaultProfile(), Args: []string{"true"}}, false, true)
	if err != nil {
		return Mechanisms{}, err
	}
	p.Wait()
	return p.mech, nil
}

func (l *Launcher) emitLaunch(ctx context.Context, p *Process, spec Spec, refused error) error {
	e := newEvent("sandbox.launch", events.ActivityCreate, p.labels)
	for k, v := range p.mech.Attrs() {
		e.Warden.Attrs[k] = v
	}
	e.Warden.Attrs["command"] = strings.Join(spec.Args, " ")
	e.Warden.Attrs["tier"] = l.preset.Tier.String()
	if refused != nil {
		e.ActionID, e.DispositionID, e.StatusID = events.ActionDenied, events.DispositionBlocked, events.StatusFailure
		e.SeverityID = events.SeverityMedium
		e.Warden.Reason = "sandbox_refused"
		e.StatusCode = "sandbox_refused"
		e.StatusDetail = refused.Error()
		e.Message = "sandbox launch refused"
	} else {
		e.ActionID, e.DispositionID, e.StatusID = events.ActionAllowed, events.DispositionAllowed, events.StatusSuccess
		e.Warden.Reason = "sandbox_started"
		e.StatusCode = "sandbox_started"
		e.Message = "sandbox started"
		if len(p.mech.Warnings) > 0 {
			e.SeverityID = events.SeverityLow
		}
	}
	if err := l.opts.Sink.Emit(ctx, e); err != nil {
		return fmt.Errorf("recording sandbox launch: %w", err)
	}
	return nil
}

func (l *Launcher) emitExit(p *Process) {
	e := newEvent("sandbox.exit", events.ActivityDelete, p.labels)
	e.Warden.Reason = string(p.exit.Reason)
	e.StatusCode = string(p.exit.Reason)
	e.StatusDetail = p.exit.Detail
	e.Message = "sandbox ended: " + p.exit.String()
	e.Warden.Attrs["code"] = fmt.Sprint(p.exit.Code)
	if p.exit.Signal != "" {
		e.Warden.Attrs["signal"] = p.exit.Signal
	}
	e.Warden.Attrs["duration_ms"] = fmt.Sprint(p.exit.Duration.Milliseconds())
	e.StatusID = events.StatusSuccess
	if !p.exit.Success() {
		e.StatusID = events.StatusFailure
	}
	if p.exit.Reason == ExitContained {
		e.SeverityID = events.SeverityHigh
	}
	// The process has already ended; a failed record cannot undo that.
	if err := l.opts.Sink.Emit(context.Background(), e); err != nil {
		l.logger.Error("recording sandbox exit", "sandbox", p.id, "err", err)
	}
}

func userHome() string {
	h, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return h
}
