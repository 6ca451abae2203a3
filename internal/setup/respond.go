package setup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/approval"
	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/gateway"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/respond"
	"github.com/warden-run/warden/tier"
)

// eventTap is the detection engine's place beside the audit log in the
// deployment's sink (Events is Multi{Audit, tap}): empty until
// EnableResponse attaches the engine, so every part that holds the sink
// from Open on feeds detection too.
type eventTap struct{ s atomic.Pointer[events.Sink] }

// Emit implements events.Sink.
func (t *eventTap) Emit(ctx context.Context, e events.Event) error {
	if p := t.s.Load(); p != nil {
		return (*p).Emit(ctx, e)
	}
	return nil
}

func (t *eventTap) attach(s events.Sink) { t.s.Store(&s) }

// ResponseOptions configure detection and response.
type ResponseOptions struct {
	// RuleFiles are operators' rule files or directories, layered over the
	// built-in pack (same id: replaced; enabled: false: switched off).
	RuleFiles []string
	// Webhook and WebhookSecret configure notify (Slack-compatible, HMAC
	// signed). Without a URL, notify actions fail and are recorded so.
	Webhook       string
	WebhookSecret []byte
	// ApprovalWait bounds how long a held call waits for a human (default
	// 30s).
	ApprovalWait time.Duration
	// EmitBudget, QueueSize and FlushInterval tune the engine (defaults:
	// respond.Options).
	EmitBudget    time.Duration
	QueueSize     int
	FlushInterval time.Duration
	// OnAction observes every action (tests, the demo's time to contain).
	OnAction func(respond.Alert, respond.ActionResult)
}

// Environment variables DefaultResponseOptions reads.
const (
	EnvWebhookURL    = "WARDEN_WEBHOOK_URL"
	EnvWebhookSecret = "WARDEN_WEBHOOK_SECRET"
)

// RulesDir is where an operator's rule files live in a data directory.
func RulesDir(dir string) string { return filepath.Join(dir, "rules") }

// DefaultResponseOptions are what `warden serve` uses: the rule files in
// <data dir>/rules (if any) over the built-in pack, and the webhook from
// WARDEN_WEBHOOK_URL and WARDEN_WEBHOOK_SECRET.
func DefaultResponseOptions(dir string) ResponseOptions {
	o := ResponseOptions{Webhook: os.Getenv(EnvWebhookURL), WebhookSecret: []byte(os.Getenv(EnvWebhookSecret))}
	if fi, err := os.Stat(RulesDir(dir)); err == nil && fi.IsDir() {
		o.RuleFiles = []string{RulesDir(dir)}
	}
	return o
}

// Response is detection and response in a deployment: the engine on the
// event stream, approvals, the webhook.
type Response struct {
	Engine    *respond.Engine
	Approvals *approval.Service
	Notifier  *respond.Notifier
	Rules     *respond.RuleSet
	d         *Deployment
	gw        atomic.Pointer[gateway.Gateway]
	presets   sync.Map // agent -> cachedPreset
}

// UseGateway tells detection and containment which gateway runs in this
// process (after NewGatewayWith): its tools' labels, its sessions and
// tool-server processes. Until then tools carry every label and session
// actions fail.
func (r *Response) UseGateway(gw *gateway.Gateway) { r.gw.Store(gw) }

// labels gives rule expressions the risk labels of a tool.
func (r *Response) labels(tool string) ([]string, bool) {
	if gw := r.gw.Load(); gw != nil {
		return gw.Labels(tool)
	}
	return nil, false
}

// EnableResponse compiles the rules, opens approvals and the engine
// (loading persisted windows), attaches the engine beside the audit log
// and starts it; it stops with the deployment. Call it once, after Open.
func (d *Deployment) EnableResponse(ctx context.Context, o ResponseOptions) (*Response, error) {
	builtin, err := respond.Builtin()
	if err != nil {
		return nil, fmt.Errorf("the built-in rule pack: %w", err)
	}
	layers := [][]respond.Document{builtin}
	if len(o.RuleFiles) > 0 {
		mine, err := respond.LoadFiles(o.RuleFiles)
		if err != nil {
			return nil, err
		}
		layers = append(layers, mine)
	}
	rs, err := respond.Compile(layers...)
	if err != nil {
		return nil, fmt.Errorf("detection rules: %w", err)
	}
	r := &Response{Rules: rs, d: d}
	log := d.Log.With("component", "respond")
	ao := approval.Options{DB: d.DB, Events: d.Events, Log: log, Wait: o.ApprovalWait}
	if o.Webhook != "" {
		if r.Notifier, err = respond.NewNotifier(respond.NotifierOptions{URL: o.Webhook, Secret: o.WebhookSecret, Log: log}); err != nil {
			return nil, err
		}
		ao.OnRequest = notice(r.Notifier)
	}
	if r.Approvals, err = approval.Open(ctx, ao); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if r.Notifier != nil {
		r.Notifier.Start(rctx)
	}
	c := containment{d: d, gw: &r.gw}
	r.Engine, err = respond.New(ctx, respond.Options{
		Rules: rs, DB: d.DB, Record: d.Audit, Notifier: r.Notifier, Log: log,
		Actions: respond.Actions{Revoker: c, Disabler: c, Sessions: c, Sandboxes: c, Approvals: r.Approvals, Memory: c},
		Labels:  r.labels, Preset: r.agentPreset,
		QueueSize: o.QueueSize, EmitBudget: o.EmitBudget, FlushInterval: o.FlushInterval, OnAction: o.OnAction,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	r.Engine.Start(rctx)
	d.detect.attach(r.Engine)
	d.closers = append(d.closers, func() error {
		cctx, done := context.WithTimeout(context.Background(), 10*time.Second)
		defer done()
		err := r.Engine.Close(cctx)
		if r.Notifier != nil {
			cancel() // pending deliveries are failed, not waited for
			r.Notifier.Close()
		}
		cancel()
		return err
	})
	log.Info("detection rules loaded", "rules", len(rs.Rules), "files", o.RuleFiles, "webhook", o.Webhook != "")
	return r, nil
}

// notice tells a human through the webhook of each call held for
// approval.
func notice(n *respond.Notifier) func(approval.Approval) {
	return func(a approval.Approval) {
		n.Send(respond.Message{
			ID:   a.ID,
			Text: fmt.Sprintf(":raised_hand: A call waits for approval: *%s* by %s. Decide with `warden approvals approve %s` or `deny`.", a.Tool, a.Agent, a.ID),
			Fields: map[string]string{"Approval": a.ID, "Agent": a.Agent, "Task": a.Task, "Tool": a.Tool, "Arguments": a.Arguments,
				"Why": a.Reason, "Expires": a.ExpiresAt.Format(time.RFC3339)},
			Order:  []string{"Approval", "Agent", "Task", "Tool", "Arguments", "Why", "Expires"},
			Warden: a,
		})
	}
}

// GatewayOptions puts the response stages into the gateway's pipeline:
// the backlog check right after authenticate, the detection fence right
// after authorize, the approval hold right before the upstream (after
// outbound inspection). Pass it to NewGatewayWith.
func (r *Response) GatewayOptions(o *gateway.Options) {
	stages := o.Stages
	if stages == nil {
		stages = gateway.DefaultStages()
	}
	stages = insertStage(stages, "authenticate", false, respond.BacklogStage(r.Engine, r.d.Config.Tier, r.d.Events))
	// The containment fence goes after the outbound inspection: the call
	// that completes a rule is refused for what it is (a taint or DLP
	// block) whenever inspection would refuse it, rather than by however
	// fast the engine raced it; every later call meets the fence.
	at := "authorize"
	if slices.ContainsFunc(stages, func(s gateway.Stage) bool { return s.Name == "outbound" }) {
		at = "outbound"
	}
	stages = insertStage(stages, at, false, respond.ContainedStage(r.Engine))
	o.Stages = insertStage(stages, "upstream", true, respond.ApprovalStage(r.Approvals, r.d.Config.Tier))
	o.Hold = func(c *gateway.Call, rule, reason string) *gateway.Denial {
		return respond.HoldCall(r.Approvals, c, rule, reason)
	}
}

// Wrap returns gateway options that apply opt (another part's hooks, may
// be nil) and then GatewayOptions.
func (r *Response) Wrap(opt func(*gateway.Options)) func(*gateway.Options) {
	return func(o *gateway.Options) {
		if opt != nil {
			opt(o)
		}
		r.GatewayOptions(o)
	}
}

// insertStage puts s after (or before) the stage named at; at the end when
// there is none.
func insertStage(stages []gateway.Stage, at string, before bool, s gateway.Stage) []gateway.Stage {
	i := slices.IndexFunc(stages, func(x gateway.Stage) bool { return x.Name == at })
	if i < 0 {
		return append(slices.Clone(stages), s)
	}
	if !before {
		i++
	}
	return slices.Insert(slices.Clone(stages), i, s)
}

// agentPreset is the preset that governs an agent: the stricter of the
// deployment's tier and the agent's own, cached for a few seconds (the
// engine asks on its hot path; an agent's tier is set at registration).
func (r *Response) agentPreset(agent string) tier.Preset {
	if v, ok := r.presets.Load(agent); ok {
		if c := v.(cachedPreset); time.Since(c.at) < 5*time.Second {
			return c.p
		}
	}
	p := r.d.agentPreset(agent)
	r.presets.Store(agent, cachedPreset{p: p, at: time.Now()})
	return p
}

type cachedPreset struct {
	p  tier.Preset
	at time.Time
}

func (d *Deployment) agentPreset(agent string) tier.Preset {
	t := d.Config.Tier
	if id, err := spiffeid.FromString(agent); err == nil {
		if role, name, err := identity.RoleOf(id); err == nil && role == identity.RoleAgent {
			if rec, err := d.Identity.Get(context.Background(), identity.RoleAgent, name); err == nil {
				t = tier.Stricter(t, rec.Tier)
			}
		}
	}
	return tier.For(t)
}

// containment implements respond's actions over the deployment's parts.
type containment struct {
	d  *Deployment
	gw *atomic.Pointer[gateway.Gateway]
}

const respondActor = "warden:respond"

func (c containment) RevokeTask(ctx context.Context, task, reason string) error {
	_, err := c.d.Grants.Revoke(ctx, respondActor, task, reason)
	return err
}

func (c containment) RevokeAgentTasks(ctx context.Context, agent, reason string) (int, error) {
	return c.d.Grants.RevokeAgent(ctx, respondActor, agent, reason)
}

func (c containment) DisableAgent(ctx context.Context, agent, _ string) error {
	id, err := spiffeid.FromString(agent)
	if err != nil {
		return fmt.Errorf("%w: %v", respond.ErrPermanent, err)
	}
	role, name, err := identity.RoleOf(id)
	if err != nil || role != identity.RoleAgent {
		return fmt.Errorf("%w: %s is not an agent", respond.ErrPermanent, agent)
	}
	// the identity service's status hook revokes every grant of the agent
	// and drops its sessions at the gateway
	_, err = c.d.Identity.SetStatus(ctx, respondActor, identity.RoleAgent, name, identity.StatusDisabled)
	var ie *identity.Error
	if errors.As(err, &ie) && (ie.Code == identity.CodeDeleted || ie.Code == identity.CodeUnknown) {
		return fmt.Errorf("%w: %v", respond.ErrPermanent, err)
	}
	return err
}

func (c containment) gateway() (*gateway.Gateway, error) {
	gw := c.gw.Load()
	if gw == nil {
		return nil, fmt.Errorf("%w: no gateway runs in this process", respond.ErrPermanent)
	}
	return gw, nil
}

func (c containment) KillSessions(_ context.Context, agent, reason string) error {
	gw, err := c.gateway()
	if err != nil {
		return err
	}
	gw.DisconnectAgent(agent, reason)
	return nil
}

func (c containment) KillSandboxes(_ context.Context, agent, reason string) (int, error) {
	gw, err := c.gateway()
	if err != nil {
		return 0, err
	}
	return gw.KillAgentUpstreams(agent, reason), nil
}

// SnapshotMemory snapshots Warden's memory (every namespace's head, signed)
// so that what the agent may have poisoned can be rolled back.
func (c containment) SnapshotMemory(ctx context.Context, agent, task, reason string) (string, error) {
	if c.d.MemoryStore == nil {
		return "", fmt.Errorf("%w: Warden's memory is not configured in this deployment, so there is nothing to snapshot", respond.ErrPermanent)
	}
	name := fmt.Sprintf("respond-%s-%s", time.Now().UTC().Format("20060102T150405.000Z"), events.NewID()[:8])
	if _, err := c.d.MemoryStore.Snapshot(ctx, name, respondActor); err != nil {
		return "", err
	}
	return name, nil
}
