package setup

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/gateway"
	"github.com/warden-run/warden/inspect"
	"github.com/warden-run/warden/sandbox"
	"github.com/warden-run/warden/supply"
)

// Supply is what the supply package adds to a deployment's gateway: the
// lock, the Vet hook (pinning and the description scanner) and the
// launcher that verifies stdio servers before they start.
type Supply struct {
	Store    *supply.Store
	Scanner  *supply.Scanner
	Vetter   *supply.Vetter
	Launcher *supply.Launcher
	relist   time.Duration
}

// NewSupply builds the supply controls from the deployment's
// configuration, wrapping next (the sandbox, or nil for plain processes).
// Pass Supply.Launcher and Supply.Apply to NewGatewayWith, then run Watch.
func (d *Deployment) NewSupply(next gateway.Launcher) (*Supply, error) {
	return d.newSupply(next, nil)
}

// NewSupplyPinnedTo is NewSupply with the verifying launcher checking
// servers against pins rather than warden.lock (`warden tools lock` and
// `approve` list tools from exactly what they are about to pin).
func (d *Deployment) NewSupplyPinnedTo(next gateway.Launcher, pins map[string]*supply.Identity) (*Supply, error) {
	return d.newSupply(next, func(server string) (*supply.Identity, error) {
		if id, ok := pins[server]; ok && id != nil {
			return id, nil
		}
		return nil, fmt.Errorf("%s is not being pinned", server)
	})
}

func (d *Deployment) newSupply(next gateway.Launcher, pins func(string) (*supply.Identity, error)) (*Supply, error) {
	c := d.Config.Supply
	sev, err := supply.ParseSeverity(c.Severity())
	if err != nil {
		return nil, err
	}
	det, err := inspect.NewDetector(inspect.DetectorOptions{})
	if err != nil {
		return nil, fmt.Errorf("loading the injection detector for the description scanner: %w", err)
	}
	sc, err := supply.NewScanner(supply.ScannerOptions{Detector: det})
	if err != nil {
		return nil, err
	}
	s := &Supply{Store: supply.NewStore(c.LockPath(d.Dir)), Scanner: sc, relist: c.Relist()}
	log := d.Log.With("component", "supply")
	if s.Vetter, err = supply.NewVetter(supply.VetterOptions{Store: s.Store, Scanner: sc, MaxSeverity: sev, Sink: d.Events, Log: log}); err != nil {
		return nil, err
	}
	if next == nil {
		next = gateway.PlainLauncher{}
	}
	if sl, ok := next.(*sandboxLauncher); ok {
		next = readOnlySandbox{sl}
	}
	fromLock := pins == nil
	if fromLock {
		pins = supply.LockPins(s.Store)
	}
	sigs := map[string]supply.SignatureCheck{}
	for name, sig := range c.Signatures {
		if sigs[name], err = supply.NewSignatureCheck(d.Dir, sig); err != nil {
			return nil, fmt.Errorf("supply.signatures.%s: %w", name, err)
		}
	}
	if s.Launcher, err = supply.NewLauncher(supply.LauncherOptions{Next: next, Pins: pins, Signatures: sigs, Sink: d.Events, Log: log}); err != nil {
		return nil, err
	}
	d.closers = append(d.closers, func() error { s.Launcher.Close(); return nil })
	if _, err := s.Store.Current(); err != nil && fromLock {
		log.Warn("every upstream tool is held back until the lock is fixed", "lock", s.Store.Path(), "err", err)
	}
	return s, nil
}

// Apply sets the gateway's Vet hook (for NewGatewayWith).
func (s *Supply) Apply(o *gateway.Options) { o.Vet = s.Vetter.Vet }

// lockPoll is how often Watch looks for an approval written to the lock.
const lockPoll = 2 * time.Second

// Watch keeps the gateway's verdicts current until ctx ends: it re-vets
// every tool when the lock file changes (an operator approved something)
// and lists every upstream's tools again each re-list interval.
func (s *Supply) Watch(ctx context.Context, gw *gateway.Gateway) {
	relist := time.NewTicker(s.relist)
	defer relist.Stop()
	poll := time.NewTicker(lockPoll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-relist.C:
			gw.Relist(ctx)
		case <-poll.C:
			if s.Store.Changed() {
				gw.Revet()
			}
		}
	}
}

// readOnlySandbox lets the verifying launcher expose the tree it verified,
// read-only, in the upstream's sandbox profile.
type readOnlySandbox struct{ s *sandboxLauncher }

func (r readOnlySandbox) Start(ctx context.Context, upstream string, st *config.StdioUpstream, stderr io.Writer) (gateway.Proc, error) {
	return r.s.Start(ctx, upstream, st, stderr)
}

// StartReadOnly implements supply.ReadOnlyLauncher: the upstream's profile
// (or the default one) with ro added to its read-only paths.
func (r readOnlySandbox) StartReadOnly(ctx context.Context, upstream string, st *config.StdioUpstream, ro []string, stderr io.Writer) (gateway.Proc, error) {
	name := st.Sandbox
	if name == "" {
		name = "default"
	}
	prof, ok := r.s.profiles.Profile(name)
	if !ok {
		if st.Sandbox != "" {
			return nil, fmt.Errorf("sandbox profile %q is not defined", st.Sandbox)
		}
		prof = sandbox.DefaultProfile()
	}
	// The sandbox launcher adds the command itself; a path listed twice is
	// refused.
	have := slices.Clone(prof.ReadOnly)
	for _, p := range ro {
		if p != st.Command && !slices.Contains(have, p) {
			have = append(have, p)
		}
	}
	prof.ReadOnly = have
	profiles := maps.Clone(r.s.profiles.Profiles)
	if profiles == nil {
		profiles = map[string]config.SandboxProfile{}
	}
	profiles[name] = prof
	return (&sandboxLauncher{l: r.s.l, profiles: config.Sandbox{Profiles: profiles}}).Start(ctx, upstream, st, stderr)
}
