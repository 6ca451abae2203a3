package gateway

// KillAgentUpstreams kills the per-session tool-server processes (their
// sandboxes) of every session the agent owns, and says how many it killed:
// containment for an agent that may have subverted one of them. Its
// sessions stay open; a later call, if its grant still allows one, gets a
// fresh process. Shared upstream processes serve other agents too and are
// left alone. The calls in flight on a killed process fail upstream.
func (g *Gateway) KillAgentUpstreams(agent, reason string) int {
	g.sessions.mu.Lock()
	var mine []*session
	for _, st := range g.sessions.byID {
		if st.owner == agent {
			mine = append(mine, st)
		}
	}
	g.sessions.mu.Unlock()
	n := 0
	for _, st := range mine {
		st.mu.Lock()
		own := st.own
		st.own = nil
		st.mu.Unlock()
		for name, c := range own {
			g.log.Info("killing an agent's tool-server process", "agent", agent, "upstream", name, "session", st.id, "reason", reason)
			c.close()
			n++
		}
	}
	return n
}
