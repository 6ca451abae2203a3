package gateway

import "context"

// Relist lists every connected upstream's tools (and resources and
// prompts) again and re-vets them, as on notifications/tools/list_changed:
// a periodic re-list catches a server that changes its tools without
// saying so. Upstreams that are down are skipped (they list on reconnect).
func (g *Gateway) Relist(ctx context.Context) {
	for _, name := range g.order {
		if ctx.Err() != nil {
			return
		}
		g.ups[name].refresh(ctx)
	}
}
