package setup

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/gateway"
	"github.com/warden-run/warden/inspect"
	"github.com/warden-run/warden/memory"
)

// openMemory opens the memory store and builds Warden's memory server: its
// entries signed with the memory key, its quarantine check the injection
// detector, its cross-namespace reads decided by policy.
func (d *Deployment) openMemory(ctx context.Context) error {
	var err error
	if d.Inspector, err = inspect.New(d.Config.Preset(), d.Config.Inspect); err != nil {
		return fmt.Errorf("starting inspection: %w", err)
	}
	k, err := loadKey(d.Dir, config.KeyMemory)
	if err != nil {
		return err
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return fmt.Errorf("%s: the memory key must be Ed25519", d.Dir.KeyFile(config.KeyMemory))
	}
	if d.MemoryStore, err = memory.OpenStore(ctx, memory.StoreOptions{DB: d.DB, Key: ek, Events: d.Events}); err != nil {
		return err
	}
	d.Memory, err = memory.NewServer(memory.Options{
		Store: d.MemoryStore, Detector: d.Inspector.Detector(), Policy: d.Policy, Events: d.Events, Log: d.Log.With("component", "memory"),
		Withhold: d.Config.Memory.Withhold(d.Config.Tier),
	})
	if err != nil {
		return err
	}
	d.guarded = map[string]bool{}
	for _, u := range d.Config.Gateway.Upstreams {
		if u.Guard == "memory" {
			d.guarded[u.Name] = true
		}
	}
	if len(d.guarded) > 0 {
		d.memoryGuard, err = memory.NewGuard(ctx, memory.GuardOptions{DB: d.DB, Events: d.Events,
			Log: d.Log.With("component", "memory-guard"), Withhold: d.Config.Memory.Withhold(d.Config.Tier)})
	}
	return err
}

// guardStage checks, after the upstream answered, every call to a guarded
// third-party memory server: what it wrote is recorded, what it read is
// checked against the record; untrusted items read taint the session.
func (d *Deployment) guardStage() gateway.Stage {
	return gateway.Stage{Name: "memory_guard", Run: func(c *gateway.Call) *gateway.Denial {
		if !d.guarded[c.Tool.Server] {
			return nil
		}
		taint, err := d.memoryGuard.Observe(c.Ctx, &memory.GuardedCall{Server: c.Tool.Server, Tool: c.Tool.Name, Args: c.Args, Result: c.Result,
			Caller: memory.Caller{Agent: c.Caller.ID.String(), Name: c.Caller.Name, Task: c.Decision.Task, Session: c.Session(), Call: c.ID(), Sources: c.Sources()}})
		if err != nil {
			return &gateway.Denial{Code: "memory_unverified", Message: err.Error()}
		}
		c.Taint(taint.Content, taint.Sources...)
		return nil
	}}
}

// stages is the gateway's pipeline for this deployment: the default one,
// with the memory guard after the upstream when a server is guarded.
func (d *Deployment) stages() []gateway.Stage {
	var out []gateway.Stage
	for _, s := range gateway.DefaultStages() {
		out = append(out, s)
		if s.Name == "upstream" && d.memoryGuard != nil {
			out = append(out, d.guardStage())
		}
	}
	return out
}

// builtin serves the gateway's builtin upstreams.
func (d *Deployment) builtin(name string) (*mcp.Server, error) {
	if name == "memory" && d.Memory != nil {
		return d.Memory.MCP(), nil
	}
	return nil, fmt.Errorf("no builtin upstream %q", name)
}
