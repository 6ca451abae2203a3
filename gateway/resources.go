package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/authz"
	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/inspect"
	"github.com/warden-run/warden/policy"
	"github.com/warden-run/warden/tier"
)

// Resources and prompts are reads (policy action read on Resource or
// Prompt). A grant names them as pseudo-tools of their server, so that it
// can constrain them like any call:
//
//	server.read_resource   argument uri
//	server.get_prompt      arguments name, arguments
//
// Their labels are set under those names in warden.yaml; unlisted, they
// carry all five, so reading them taints the session.
const (
	ReadResource = "read_resource"
	GetPrompt    = "get_prompt"
)

// CodeRefused is the JSON-RPC error code of a refused resource or prompt
// read; the error's data is the decision.
const CodeRefused = -32003

// pseudoTool is the catalog entry a read is checked as.
func (g *Gateway) pseudoTool(server, name string) *Tool {
	u := g.ups[server]
	labels, ok := u.cfg.Labels(name)
	if !ok {
		labels = policy.AllLabels()
	}
	return &Tool{ID: toolID(server, name), Server: server, Name: name, Labels: labels}
}

// read runs a resource or prompt read through the same stages as a call:
// authenticate, authorize (as a read), forward, inspect, taint. forward
// returns the text the agent would read.
func (g *Gateway) read(ctx context.Context, extra *mcp.RequestExtra, ss *mcp.ServerSession, t *Tool, args any, target policy.Target,
	forward func(context.Context, *mcp.ClientSession) (string, error)) error {
	ra := g.requestAuth(extra)
	if ra == nil {
		return &jsonrpc.Error{Code: CodeRefused, Message: "unauthenticated request"}
	}
	if _, err := g.verify.Lookup(ra.caller.ID, identity.RoleAgent); err != nil {
		return refusal(t, string(identity.CodeOf(err)), err.Error(), nil)
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return err
	}
	st := g.sessions.get(ss, ra.caller.ID.String())
	c := &Call{Ctx: ctx, Tool: t, Args: raw, Caller: ra.caller, g: g, auth: ra, session: st, id: randomKey()[:16]}
	d := g.authz.Authorize(ctx, authz.Request{
		Call: grant.Call{Agent: ra.caller, Token: ra.grant, Tool: t.ID, Args: raw, MTLS: ra.mtls, DPoP: ra.dpop, Method: ra.method, URL: ra.url},
		Tool: t.Policy(), Read: target, Session: c.sessionFacts(),
	})
	if !d.Allow {
		return refusal(t, d.Code, reasonText(d), d.Reasons)
	}
	u := g.ups[t.Server]
	if u.cfg.Guard != "" && t.Name == ReadResource {
		// A guarded server's content is checked on its tools' answers;
		// a resource read would go around that check.
		return refusal(t, "memory_guarded", fmt.Sprintf("%s is a guarded memory server: read it through its tools, whose answers Warden checks", t.Server), nil)
	}
	cs, err := u.sessionFor(ctx, st)
	if err != nil {
		return refusal(t, "upstream_unavailable", err.Error(), nil)
	}
	fctx, cancel := context.WithTimeout(ctx, u.timeout())
	defer cancel()
	text, err := forward(fctx, cs)
	if err != nil {
		return err
	}
	c.Result = &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
	if g.inspector != nil {
		res := g.inspector.CheckInbound(ctx, inspect.Inbound{Tool: t.ID, CallID: c.taintID(), Labels: t.Labels, Content: text, Session: st.inspect})
		c.untrustedRead()
		if d := c.noteFindings(res); d != nil {
			return refusal(t, d.Code, d.Message, nil)
		}
		// A read's contents cannot be redacted in place as a result's can:
		// what would be redacted is withheld.
		if res.Blocked() || res.Action == tier.ActionRedact {
			d := blockDenial(res)
			return refusal(t, d.Code, d.Message, d.Reasons)
		}
	}
	stageTaint(c)
	return nil
}

func reasonText(d authz.Decision) string {
	for _, r := range d.Reasons {
		if r.Code == d.Code {
			return r.Message
		}
	}
	return d.Code
}

func refusal(t *Tool, code, msg string, reasons []authz.Reason) error {
	data, _ := json.Marshal(map[string]any{"allow": false, "code": code, "tool": t.ID, "reasons": reasons})
	return &jsonrpc.Error{Code: CodeRefused, Message: fmt.Sprintf("Warden refused %s (%s): %s", t.ID, code, msg), Data: data}
}

func (g *Gateway) readResource(ctx context.Context, req *mcp.ReadResourceRequest, server, uri string) (*mcp.ReadResourceResult, error) {
	var res *mcp.ReadResourceResult
	err := g.read(ctx, req.Extra, req.Session, g.pseudoTool(server, ReadResource), map[string]any{"uri": uri},
		policy.Resource{Server: server, URI: uri},
		func(ctx context.Context, cs *mcp.ClientSession) (string, error) {
			var err error
			if res, err = cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri}); err != nil {
				return "", err
			}
			var b strings.Builder
			for _, c := range res.Contents {
				b.WriteString(c.Text)
				b.WriteByte('\n')
			}
			return b.String(), nil
		})
	return res, err
}

func (g *Gateway) getPrompt(ctx context.Context, req *mcp.GetPromptRequest, server, name string) (*mcp.GetPromptResult, error) {
	var res *mcp.GetPromptResult
	err := g.read(ctx, req.Extra, req.Session, g.pseudoTool(server, GetPrompt), map[string]any{"name": name, "arguments": req.Params.Arguments},
		policy.Prompt{Server: server, Name: name},
		func(ctx context.Context, cs *mcp.ClientSession) (string, error) {
			var err error
			if res, err = cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: name, Arguments: req.Params.Arguments}); err != nil {
				return "", err
			}
			var b strings.Builder
			b.WriteString(res.Description)
			for _, m := range res.Messages {
				b.WriteByte('\n')
				b.WriteString(resultText(&mcp.CallToolResult{Content: []mcp.Content{m.Content}}))
			}
			return b.String(), nil
		})
	return res, err
}
