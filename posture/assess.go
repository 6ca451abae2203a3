package posture

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/warden-run/warden/audit"
	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/internal/setup"
	"github.com/warden-run/warden/sandbox"
	"github.com/warden-run/warden/tier"
)

// Options tune an assessment. The zero value is ready to use.
type Options struct {
	// Probe reports the sandbox mechanisms this host puts in force. nil
	// launches an empty sandbox (HostProbe), which needs the running binary
	// to call sandbox.MaybeInit first thing. When the probe fails, the
	// newest launch recorded in the audit log is used instead.
	Probe func(context.Context) (sandbox.Mechanisms, error)
	// AuditTail is how many of the newest audit records are read for
	// sandbox launches and detection activity (default 20000).
	AuditTail uint64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives operational messages (default: discarded).
	Log *slog.Logger
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o Options) tail() uint64 {
	if o.AuditTail > 0 {
		return o.AuditTail
	}
	return defaultAuditTail
}

func (o Options) log() *slog.Logger {
	if o.Log != nil {
		return o.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Status of one control.
type Status string

// Statuses.
const (
	Pass         Status = "pass"
	Fail         Status = "fail"
	NotReachable Status = "not_reachable" // no configuration of this version passes it
)

// Report is the assessment of one deployment.
type Report struct {
	Deployment  string    `json:"deployment"` // the data directory
	TrustDomain string    `json:"trust_domain"`
	Configured  tier.Tier `json:"configured_tier"` // tier: in warden.yaml
	// Overall is the lowest tier any phase reaches (0: a phase reaches none).
	Overall     tier.Tier     `json:"-"`
	AssessedAt  time.Time     `json:"assessed_at"`
	Phases      []PhaseResult `json:"phases"`
	Frameworks  []*Framework  `json:"-"`
	Framework   string        `json:"framework,omitempty"` // set by Filter
	catalogue   *Catalogue
	sandboxFrom string
}

// PhaseResult is one phase: the tier it reaches and each control's result.
type PhaseResult struct {
	Phase    Phase           `json:"phase"`
	Reached  tier.Tier       `json:"-"`
	Controls []ControlResult `json:"controls"`
}

// ControlResult is one control as assessed.
type ControlResult struct {
	Control  Control  `json:"control"`
	Status   Status   `json:"status"`
	Evidence []string `json:"evidence"`
	// Fix is the change that makes the control pass (empty when it passes).
	Fix string `json:"fix,omitempty"`
}

// TierName renders a reached tier; "none" when no tier is reached.
func TierName(t tier.Tier) string {
	if !t.Valid() {
		return "none"
	}
	return t.String()
}

// Meets reports whether every phase reaches at least target.
func (r *Report) Meets(target tier.Tier) bool { return r.Overall >= target }

// AssessDeployment assesses a deployment opened in this process (the demo,
// tests): its live identity, grant, policy and memory services, its audit
// log's durability in force and, when a gateway runs, its tool catalogue.
// It reads the audit log through a Reader and changes nothing.
func AssessDeployment(ctx context.Context, d *setup.Deployment, o Options) (*Report, error) {
	if d == nil || d.Config == nil {
		return nil, fmt.Errorf("assess: no deployment")
	}
	v, err := audit.NewVerifier(d.Audit.VerifierKey())
	if err != nil {
		return nil, fmt.Errorf("assess: the audit log's verifier key: %w", err)
	}
	p := parts{
		dir: d.Dir, cfg: d.Config, identity: d.Identity, grants: d.Grants, policy: d.Policy, memory: d.MemoryStore,
		verifier: v, gateway: d.Gateway,
		auditMode: func([]identity.Record) (tier.AuditMode, string) {
			return d.Audit.Mode(), "the running audit log"
		},
		threshold: func() (float64, error) {
			if d.Inspector == nil {
				return 0, fmt.Errorf("no inspector")
			}
			return d.Inspector.Detector().Threshold(), nil
		},
	}
	return assess(ctx, p, o)
}

// AssessDir assesses the deployment in a data directory without disturbing
// a `warden serve` running on it: it takes none of the server's locks,
// reads the database and the audit log, and writes nothing.
func AssessDir(ctx context.Context, dir config.Dir, o Options) (*Report, error) {
	p, done, err := openDir(ctx, dir, o.log())
	if err != nil {
		return nil, err
	}
	defer done()
	return assess(ctx, p, o)
}

func assess(ctx context.Context, p parts, o Options) (*Report, error) {
	cat, err := LoadCatalogue()
	if err != nil {
		return nil, err
	}
	s := gather(ctx, p, o)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return evaluate(cat, s), nil
}

// evaluate runs every check over the snapshot. A phase reaches the highest
// tier whose controls, and those of every tier below it, all pass; overall
// is the lowest tier any phase reaches.
func evaluate(cat *Catalogue, s *snapshot) *Report {
	r := &Report{Deployment: string(s.dir), TrustDomain: s.cfg.TrustDomain, Configured: s.cfg.Tier,
		AssessedAt: s.now.UTC(), catalogue: cat, sandboxFrom: s.mechFrom, Overall: tier.Optimized}
	for _, k := range frameworkOrder {
		r.Frameworks = append(r.Frameworks, cat.Frameworks[k])
	}
	for _, ph := range cat.Phases {
		pr := PhaseResult{Phase: ph}
		failed := map[tier.Tier]bool{}
		for _, c := range cat.controlsOf(ph.ID) {
			res := checks[c.Check](s, c)
			cr := ControlResult{Control: c, Status: Pass, Evidence: res.evidence}
			switch {
			case res.unreachable:
				cr.Status = NotReachable
			case !res.pass:
				cr.Status = Fail
			}
			if cr.Status != Pass {
				failed[c.Tier] = true
				cr.Fix = c.Fix
				if res.fix != "" {
					cr.Fix = res.fix
				}
			}
			pr.Controls = append(pr.Controls, cr)
		}
		for _, t := range tier.All {
			if failed[t] {
				break
			}
			pr.Reached = t
		}
		r.Overall = min(r.Overall, pr.Reached)
		r.Phases = append(r.Phases, pr)
	}
	return r
}

// Filter returns the report seen through one framework: only the controls
// mapped to it. Tiers are still those of the whole catalogue: a tier is a
// property of the deployment, not of a framework's view of it.
func (r *Report) Filter(framework string) (*Report, error) {
	if framework == "" {
		return r, nil
	}
	if !slices.Contains(frameworkOrder, framework) {
		return nil, fmt.Errorf("unknown framework %q: want one of %v", framework, frameworkOrder)
	}
	out := *r
	out.Framework = framework
	out.Phases = nil
	for _, ph := range r.Phases {
		np := ph
		np.Controls = nil
		for _, c := range ph.Controls {
			if len(c.Control.Maps[framework]) > 0 {
				np.Controls = append(np.Controls, c)
			}
		}
		out.Phases = append(out.Phases, np)
	}
	out.Frameworks = []*Framework{r.catalogue.Frameworks[framework]}
	return &out, nil
}

// Failing returns the controls that did not pass, in report order.
func (r *Report) Failing() []ControlResult {
	var out []ControlResult
	for _, ph := range r.Phases {
		for _, c := range ph.Controls {
			if c.Status != Pass {
				out = append(out, c)
			}
		}
	}
	return out
}

// Control returns a control's result by id.
func (r *Report) Control(id string) (ControlResult, bool) {
	for _, ph := range r.Phases {
		for _, c := range ph.Controls {
			if c.Control.ID == id {
				return c, true
			}
		}
	}
	return ControlResult{}, false
}

// PhaseTier returns the tier a phase reached.
func (r *Report) PhaseTier(phase string) tier.Tier {
	for _, ph := range r.Phases {
		if ph.Phase.ID == phase {
			return ph.Reached
		}
	}
	return 0
}
