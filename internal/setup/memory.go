package setup

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/inspect"
	"github.com/warden-run/warden/memory"
)

// openMemory opens the memory store and builds Warden's memory server: its
// entries signed with the memory key, its quarantine check the injection
// detector, its cross-namespace reads decided by policy.
func (d *Deployment) openMemory(ctx context.Context) error {
	k, err := loadKey(d.Dir, config.KeyMemory)
	if err != nil {
		return err
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return fmt.Errorf("%s: the memory key must be Ed25519", d.Dir.KeyFile(config.KeyMemory))
	}
	if d.MemoryStore, err = memory.OpenStore(ctx, d.DB, ek, nil); err != nil {
		return err
	}
	det, err := inspect.NewDetector(inspect.DetectorOptions{})
	if err != nil {
		return fmt.Errorf("loading the injection detector for memory quarantine: %w", err)
	}
	d.Memory, err = memory.NewServer(memory.Options{
		Store: d.MemoryStore, Detector: det, Policy: d.Policy, Events: d.Events, Log: d.Log.With("component", "memory"),
		Withhold: d.Config.Memory.Withhold(d.Config.Tier),
	})
	return err
}

// builtin serves the gateway's builtin upstreams.
func (d *Deployment) builtin(name string) (*mcp.Server, error) {
	if name == "memory" && d.Memory != nil {
		return d.Memory.MCP(), nil
	}
	return nil, fmt.Errorf("no builtin upstream %q", name)
}
