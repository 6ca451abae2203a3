package setup

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/gateway"
	"github.com/warden-run/warden/sandbox"
)

// SandboxLauncher returns the launcher that runs the gateway's stdio
// upstreams confined, each in the sandbox profile its configuration names
// (or the default profile). It keeps one init warm ahead of need, and is
// closed with the deployment. The binary must call sandbox.MaybeInit first
// thing (warden's main does).
func (d *Deployment) SandboxLauncher() (gateway.Launcher, error) {
	l, err := sandbox.New(sandbox.Options{
		Tier: d.Config.Tier, Sink: d.Events, Logger: d.Log.With("component", "sandbox"),
		DataDir: string(d.Dir), Prewarm: true,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the sandbox: %w", err)
	}
	d.closers = append(d.closers, func() error { l.Close(); return nil })
	return &sandboxLauncher{l: l, profiles: d.Config.Sandbox}, nil
}

type sandboxLauncher struct {
	l        *sandbox.Launcher
	profiles config.Sandbox
}

// Start implements gateway.Launcher. The profile's environment is the
// process's, plus what the upstream sets; the command itself is made
// visible read-only.
func (s *sandboxLauncher) Start(ctx context.Context, upstream string, st *config.StdioUpstream, stderr io.Writer) (gateway.Proc, error) {
	name := st.Sandbox
	if name == "" {
		name = "default"
	}
	prof, ok := s.profiles.Profile(name)
	if !ok {
		if st.Sandbox != "" {
			return nil, fmt.Errorf("sandbox profile %q is not defined", st.Sandbox)
		}
		prof = sandbox.DefaultProfile()
	}
	path, err := exec.LookPath(st.Command)
	if err != nil {
		return nil, fmt.Errorf("finding %s: %w", st.Command, err)
	}
	if path, err = filepath.Abs(path); err != nil {
		return nil, err
	}
	prof.ReadOnly = append(slices.Clone(prof.ReadOnly), path)
	env := maps.Clone(prof.Env)
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, st.Env)
	prof.Env = env
	p, err := s.l.StartStdio(ctx, sandbox.Spec{Name: name, Profile: prof, Args: append([]string{path}, st.Args...), Stderr: stderr, Tool: upstream})
	if err != nil {
		return nil, err
	}
	return sandboxProc{p}, nil
}

type sandboxProc struct{ p *sandbox.Process }

func (s sandboxProc) Stdin() io.WriteCloser { return s.p.Stdin() }
func (s sandboxProc) Stdout() io.ReadCloser { return s.p.Stdout() }
func (s sandboxProc) Done() <-chan struct{} { return s.p.Done() }
func (s sandboxProc) ExitReason() string    { return s.p.Wait().String() }
func (s sandboxProc) Kill(reason string)    { s.p.Kill(sandbox.ExitSessionEnd, reason) }
