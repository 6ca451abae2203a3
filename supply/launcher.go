package supply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/gateway"
)

// ReadOnlyLauncher is a launcher that can expose extra host paths to the
// process read-only (the sandbox can; a plain process sees everything
// anyway). The verifying launcher exposes the tree it verified.
type ReadOnlyLauncher interface {
	StartReadOnly(ctx context.Context, upstream string, s *config.StdioUpstream, readOnly []string, stderr io.Writer) (gateway.Proc, error)
}

// LauncherOptions configure a verifying Launcher.
type LauncherOptions struct {
	// Next starts the process once it is verified (the sandbox).
	Next gateway.Launcher
	// Pins returns what the lock pins for a server (an error refuses).
	Pins func(server string) (*Identity, error)
	// Signatures are checked before launch, by server.
	Signatures map[string]SignatureCheck
	// Sink receives one Detection Finding per refused server and reason.
	Sink events.Sink
	Log  *slog.Logger
	// InPlace runs servers from the verified files where they are instead
	// of from a snapshot (see Launcher).
	InPlace bool
	// SnapshotDir holds the snapshots (default: the system temp dir when
	// Next is a sandbox, else /dev/shm where writable). It must not be
	// inside Warden's data directory or a home directory, which sandboxes
	// never see.
	SnapshotDir string
}

// Launcher is a gateway.Launcher that verifies a stdio server before it
// starts it: the command must not fetch at launch; its executable, script
// arguments and npm tree must match the lock, file by file; its signature,
// if one is configured, must verify. Any mismatch refuses the launch with
// the reason.
//
// What runs is then a snapshot: the npm tree, the scripts and a command
// outside the system paths are copied into a private directory while
// being hashed again (a file that changed in between fails the copy), the
// copy is made read-only, and the server is started from it (its
// arguments rewritten), with only the snapshot exposed read-only in its
// sandbox. Nothing a host process does to the original after the check
// reaches the running server. One snapshot per pinned identity is kept
// until Close.
type Launcher struct {
	o        LauncherOptions
	mu       sync.Mutex
	reported map[string]string
	snaps    snapshots
}

// NewLauncher returns a verifying launcher.
func NewLauncher(o LauncherOptions) (*Launcher, error) {
	if o.Next == nil || o.Pins == nil || o.Sink == nil {
		return nil, errors.New("supply: the verifying launcher needs the launcher it wraps, the pins and an event sink")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if _, ro := o.Next.(ReadOnlyLauncher); ro && o.SnapshotDir == "" {
		// A sandbox cannot be shown paths under /dev (so not /dev/shm).
		o.SnapshotDir = os.TempDir()
	}
	return &Launcher{o: o, reported: map[string]string{}, snaps: snapshots{base: o.SnapshotDir}}, nil
}

// Close removes the snapshots (their servers should have ended).
func (l *Launcher) Close() { l.snaps.close() }

// RefusedError is a launch refused by verification.
type RefusedError struct {
	Server string
	Reason string
}

func (e *RefusedError) Error() string {
	return "launch of " + e.Server + " refused: " + e.Reason
}

// Verify checks a server without starting it and returns what it is now.
func (l *Launcher) Verify(upstream string, s *config.StdioUpstream) (*Identity, error) {
	pinned, err := l.o.Pins(upstream)
	if err != nil {
		return nil, &RefusedError{upstream, err.Error()}
	}
	now, err := IdentityOf(config.Upstream{Name: upstream, Stdio: s})
	if err != nil {
		return nil, &RefusedError{upstream, err.Error()}
	}
	if err := VerifyIdentity(*pinned, *now); err != nil {
		return nil, &RefusedError{upstream, err.Error() + " (approve the new version with `warden tools approve " + upstream + "`)"}
	}
	if sc, ok := l.o.Signatures[upstream]; ok {
		if err := sc.Verify(now); err != nil {
			return nil, &RefusedError{upstream, err.Error()}
		}
	}
	return now, nil
}

// Start implements gateway.Launcher.
func (l *Launcher) Start(ctx context.Context, upstream string, s *config.StdioUpstream, stderr io.Writer) (gateway.Proc, error) {
	now, err := l.Verify(upstream, s)
	if err != nil {
		l.refused(ctx, upstream, err)
		return nil, err
	}
	l.mu.Lock()
	delete(l.reported, upstream)
	l.mu.Unlock()
	// Launch exactly the executable that was verified, not whatever PATH
	// finds by then.
	run := *s
	run.Command = now.Files[0].Path
	run.Args = append([]string(nil), s.Args...)
	readOnly := now.ReadOnlyPaths()
	if !l.o.InPlace {
		sn, err := l.snaps.get(now)
		if err != nil {
			err = &RefusedError{upstream, err.Error()}
			l.refused(ctx, upstream, err)
			return nil, err
		}
		r := StdioRun{Command: run.Command, Args: run.Args, Dir: run.Dir}
		sn.rewrite(now, &r)
		run.Command, run.Args = r.Command, r.Args
		readOnly = sn.readOnly(&r)
	}
	if ro, ok := l.o.Next.(ReadOnlyLauncher); ok {
		return ro.StartReadOnly(ctx, upstream, &run, readOnly, stderr)
	}
	return l.o.Next.Start(ctx, upstream, &run, stderr)
}

// refused records a refusal once per server and reason.
func (l *Launcher) refused(ctx context.Context, server string, err error) {
	reason := err.Error()
	l.mu.Lock()
	if l.reported[server] == reason {
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	e := events.New(events.ClassDetectionFinding, events.ActivityCreate, "supply")
	e.SeverityID = events.SeverityHigh
	e.StatusCode = "server_unverified"
	e.Message = reason
	e.Metadata.Profiles = []string{"security_control"}
	e.FindingInfo = &events.FindingInfo{UID: e.Metadata.UID, Title: server + " failed verification", Types: []string{"supply_chain"}}
	e.Resources = []events.Resource{{UID: server, Type: "tool_server", Name: server}}
	e.ActionID, e.DispositionID = events.ActionDenied, events.DispositionBlocked
	e.Policy = &events.Policy{UID: "supply.server_unverified", Name: "verified servers"}
	e.Warden = &events.Warden{Reason: "server_unverified", Attrs: map[string]string{"server": server}}
	if err := l.o.Sink.Emit(ctx, e); err != nil {
		l.o.Log.Error("recording a refused launch failed", "server", server, "err", err)
		return
	}
	l.o.Log.Error("tool server refused", "server", server, "reason", reason)
	l.mu.Lock()
	l.reported[server] = reason
	l.mu.Unlock()
}

// LockPins returns the pins of the lock held by store.
func LockPins(store *Store) func(string) (*Identity, error) {
	return func(server string) (*Identity, error) {
		l, err := store.Current()
		if err != nil {
			return nil, err
		}
		sl := l.Servers[server]
		if sl == nil {
			return nil, fmt.Errorf("server %s is not in warden.lock: pin it with `warden tools approve %s`", server, server)
		}
		id := sl.Identity
		if id.Transport != "stdio" {
			return nil, fmt.Errorf("warden.lock pins %s as %s, not a stdio server", server, id.Transport)
		}
		return &id, nil
	}
}
