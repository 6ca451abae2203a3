package demo

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/gateway"
	"github.com/warden-run/warden/internal/setup"
	"github.com/warden-run/warden/supply"
)

// lockUpstreams does what `warden tools lock` does: it pins every upstream
// as it is now (its files' digests), lists its tools through a gateway
// that launches exactly what it pins, and writes warden.lock.
func lockUpstreams(ctx context.Context, d *setup.Deployment, launch gateway.Launcher) error {
	pins := map[string]*supply.Identity{}
	for _, u := range d.Config.Gateway.Upstreams {
		id, err := supply.IdentityOf(u)
		if err != nil {
			return fmt.Errorf("pinning %s: %w", u.Name, err)
		}
		pins[u.Name] = id
	}
	sup, err := d.NewSupplyPinnedTo(launch, pins)
	if err != nil {
		return err
	}
	gw, err := d.NewGatewayWith(sup.Launcher, nil)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	gw.Start(sctx)
	cancel()
	listed := map[string][]*mcp.Tool{}
	for _, t := range gw.Tools() {
		listed[t.Server] = append(listed[t.Server], t.Upstream)
	}
	gw.Close()
	_, _, err = supply.NewStore(d.Config.Supply.LockPath(d.Dir)).Update(func(lk *supply.Lock) error {
		*lk = *supply.NewLock()
		for _, u := range d.Config.Gateway.Upstreams {
			if len(listed[u.Name]) == 0 {
				return fmt.Errorf("%s listed no tools", u.Name)
			}
			if _, err := supply.ApproveIn(lk, u.Name, "", listed[u.Name], pins[u.Name]); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// waitHidden waits until tools/list no longer shows tool (the gateway
// re-lists a server that says its tools changed, and holds back what
// differs from the lock).
func waitHidden(ctx context.Context, cs *mcp.ClientSession, tool string) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		names, err := listTools(ctx, cs)
		if err == nil && !contains(names, tool) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// tamper changes a pinned server's program on disk, as an attacker with
// write access to the host would.
func tamper(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte("\x00backdoor")); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
