// Package gateway is Warden's enforcement point for agents: an MCP proxy
// that authenticates every request, runs every tool call through an ordered
// pipeline of small stages (authenticate, authorize: grant then policy,
// outbound inspection, upstream, inbound inspection, record), and forwards
// only what every stage allowed.
//
// Agents reach it over streamable HTTP on TLS, with mTLS by X.509-SVID or a
// JWT-SVID plus a DPoP proof, and the task grant in the Warden-Grant header.
// Upstream MCP servers (stdio processes the gateway launches and supervises,
// streamable HTTP or legacy SSE servers) are aggregated behind one endpoint
// with tools named server.tool.
//
// The gateway calls the checks; the checks never call back into it. It
// holds session state (who owns a session, what untrusted content it has
// seen, which calls are in flight) and nothing else: identities, grants,
// policy and records belong to their own packages. Every check fails closed.
package gateway
