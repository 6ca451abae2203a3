package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/authz"
	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/inspect"
	"github.com/warden-run/warden/policy"
)

// MetaDecision is the _meta key under which a refused call's result carries
// the machine-readable decision: {"allow", "code", "stage", "reasons", ...}.
const MetaDecision = "warden.dev/decision"

// Call is one tool call on its way through the pipeline: the request
// context every stage reads and adds to.
type Call struct {
	Ctx      context.Context
	Tool     *Tool
	Args     json.RawMessage
	Caller   *identity.Caller
	Decision authz.Decision // set by the authorize stage
	Result   *mcp.CallToolResult
	Started  time.Time

	g       *Gateway
	auth    *requestAuth
	session *session
	req     *mcp.CallToolRequest
	id      string // this call's id, for taint sources and events

	approved bool // a human approved this call (see Approved)
}

// Approved records that a human approved this exact call: the stage that
// held it for one calls it once the approval arrives. Detection then knows
// the call was not the agent's choice alone (see recordUnvouched).
func (c *Call) Approved() { c.approved = true }

// ID returns the call's id.
func (c *Call) ID() string { return c.id }

// Tainted reports whether the session has ingested untrusted content.
func (c *Call) Tainted() bool {
	c.session.mu.Lock()
	defer c.session.mu.Unlock()
	return len(c.session.taint) > 0
}

// Session returns the id of the call's MCP session.
func (c *Call) Session() string { return c.session.id }

// Sources returns the untrusted content (call ids) the session has ingested.
func (c *Call) Sources() []string {
	c.session.mu.Lock()
	defer c.session.mu.Unlock()
	return append([]string(nil), c.session.taint...)
}

// listTaint adds sources to the session's list of untrusted content read.
func (c *Call) listTaint(sources []string) {
	c.session.mu.Lock()
	defer c.session.mu.Unlock()
	for _, s := range sources {
		if len(c.session.taint) < maxTaint && !slices.Contains(c.session.taint, s) {
			c.session.taint = append(c.session.taint, s)
		}
	}
}

// maxTaint bounds a session's list of untrusted sources; past it the
// session stays tainted, and further sources are not listed.
const maxTaint = 256

// Taint records that the session ingested untrusted content, from each
// source: from now on policy sees session.tainted, and the flow rules match
// later arguments against content.
func (c *Call) Taint(content string, sources ...string) {
	if len(sources) == 0 {
		return
	}
	c.listTaint(sources)
	c.session.inspect.Ingest(inspect.TaintSource{CallID: c.id, Tool: c.Tool.ID, At: time.Now(), Bytes: len(content)}, content)
}

// Denial stops a call: its stage, a stable code, and the reasons.
type Denial struct {
	Stage   string
	Code    string
	Message string
	Reasons []authz.Reason
}

// Stage is one step of the pipeline. It returns a Denial to stop the call;
// a stage that cannot make its check denies (fails closed).
type Stage struct {
	Name string
	Run  func(*Call) *Denial
}

// DefaultStages is the pipeline: authenticate, hold back quarantined tools,
// authorize (grant, then policy), inspect the arguments (outbound), forward
// upstream, inspect the result (inbound), and take note of untrusted
// output.
func DefaultStages() []Stage {
	return []Stage{
		{Name: "authenticate", Run: stageAuthenticate},
		{Name: "quarantine", Run: stageQuarantine},
		{Name: "authorize", Run: stageAuthorize},
		{Name: "outbound", Run: stageOutbound},
		{Name: "upstream", Run: stageUpstream},
		{Name: "inbound", Run: stageInbound},
		{Name: "taint", Run: stageTaint},
	}
}

// stageAuthenticate checks, once more at the moment of the call, that the
// caller was authenticated on this request and is still active.
func stageAuthenticate(c *Call) *Denial {
	if c.auth == nil || c.Caller == nil {
		return &Denial{Code: "unauthenticated", Message: "the request was not authenticated"}
	}
	if _, err := c.g.verify.Lookup(c.Caller.ID, identity.RoleAgent); err != nil {
		code := string(identity.CodeOf(err))
		return &Denial{Code: code, Message: err.Error(), Reasons: []authz.Reason{{Source: "identity", Code: code, Message: err.Error()}}}
	}
	return nil
}

// CodeQuarantined refuses a call to a tool held back by Vet.
const CodeQuarantined = "tool_quarantined"

// stageQuarantine refuses a tool held back until an operator approves it
// (changed since it was pinned, new, or poisoned).
func stageQuarantine(c *Call) *Denial {
	if c.Tool.Quarantine != "" {
		c.recordRefusal(CodeQuarantined, c.Tool.Quarantine)
		return &Denial{Code: CodeQuarantined, Message: c.Tool.Quarantine}
	}
	return nil
}

// recordRefusal records a refusal made before the decision point, which
// records its own: detection rules see every refused call.
func (c *Call) recordRefusal(code, msg string) {
	e := events.New(events.ClassAPIActivity, 99, "gateway")
	e.ActivityName = "Other"
	e.StatusID, e.SeverityID, e.StatusCode, e.StatusDetail = events.StatusFailure, events.SeverityMedium, code, msg
	e.Message = "tool call refused (" + code + ")"
	e.ActionID, e.DispositionID = events.ActionDenied, events.DispositionBlocked
	e.Actor = &events.Actor{User: &events.User{UID: c.Caller.ID.String(), Name: c.Caller.Name, Type: "agent"}, Session: &events.Session{UID: c.session.id}}
	e.Warden = &events.Warden{Agent: c.Caller.ID.String(), Tool: c.Tool.ID, Reason: code, Attrs: map[string]string{"call": c.id}}
	if err := c.g.sink.Emit(context.WithoutCancel(c.Ctx), e); err != nil {
		c.g.log.Error("could not record a refused call", "code", code, "err", err)
	}
}

// stageAuthorize asks the decision point: the task's grant and policy.
func stageAuthorize(c *Call) *Denial {
	c.Decision = c.g.authz.Authorize(c.Ctx, c.authzRequest())
	if c.Decision.Allow {
		return nil
	}
	return c.decisionDenial()
}

func (c *Call) authzRequest() authz.Request {
	return authz.Request{
		Call: grant.Call{Agent: c.Caller, Token: c.auth.grant, Tool: c.Tool.ID, Args: c.Args,
			MTLS: c.auth.mtls, DPoP: c.auth.dpop, Method: c.auth.method, URL: c.auth.url},
		Tool:    c.Tool.Policy(),
		Session: c.sessionFacts(),
	}
}

// decisionDenial is a denying decision as a stage's denial.
func (c *Call) decisionDenial() *Denial {
	msg := c.Decision.Code
	for _, r := range c.Decision.Reasons {
		if r.Code == c.Decision.Code {
			msg = r.Message
			break
		}
	}
	return &Denial{Code: c.Decision.Code, Message: msg, Reasons: c.Decision.Reasons}
}

func (c *Call) sessionFacts() policy.Session {
	c.session.mu.Lock()
	defer c.session.mu.Unlock()
	return policy.Session{ID: c.session.id, Tainted: len(c.session.taint) > 0, TaintSources: slices.Clone(c.session.taint),
		Findings: slices.Clone(c.session.findings)}
}

var (
	errRevoked = errors.New("the task's grant was revoked")
	errTimeout = errors.New("the upstream did not answer in time")
)

// stageUpstream forwards the call. It can be cancelled by the agent, by a
// timeout, or by the revocation of the task (or an ancestor) in flight.
func stageUpstream(c *Call) *Denial {
	if d := c.recordUnvouched(); d != nil {
		return d
	}
	u := c.g.ups[c.Tool.Server]
	cs, err := u.sessionFor(c.Ctx, c.session)
	if err != nil {
		return c.upstreamFailed("upstream_unavailable", fmt.Sprintf("%s is unavailable: %v", c.Tool.Server, err))
	}
	ctx, cancel := context.WithCancelCause(c.Ctx)
	defer cancel(nil)
	ctx, cancelT := context.WithTimeoutCause(ctx, u.timeout(), errTimeout)
	defer cancelT()
	untrack := c.session.track(&inflightCall{agent: c.Caller.ID.String(), tasks: c.tasks(), cancel: cancel})
	defer untrack()

	params := &mcp.CallToolParams{Name: c.Tool.Name, Arguments: c.Args}
	if u.cfg.Builtin != "" {
		// Only a server Warden runs in process gets the caller's context;
		// the agent's own _meta is never forwarded anywhere.
		params.Meta = mcp.Meta{MetaCaller: c.callerContext()}
	}
	if tok := c.req.Params.GetProgressToken(); tok != nil {
		fwd := "warden-" + randomKey()
		c.g.progress.Store(fwd, progressRoute{ss: c.req.Session, token: tok})
		defer c.g.progress.Delete(fwd)
		params.SetProgressToken(fwd)
	}
	res, err := cs.CallTool(ctx, params)
	if err != nil {
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, errRevoked):
			return &Denial{Code: string(grant.CodeRevoked), Message: "the call was cancelled in flight: " + cause.Error()}
		case errors.Is(cause, errTimeout):
			return c.upstreamFailed("upstream_timeout", fmt.Sprintf("%s did not answer within %v", c.Tool.ID, u.timeout()))
		case c.Ctx.Err() != nil:
			return &Denial{Code: "cancelled", Message: "the agent cancelled the call"}
		}
		return c.upstreamFailed("upstream_error", fmt.Sprintf("%s failed: %v", c.Tool.ID, err))
	}
	if u.cfg.Builtin == "" {
		// An upstream cannot speak for Warden: a decision or taint claim
		// in its _meta is not passed on as if Warden had made it.
		for k := range res.Meta {
			if strings.HasPrefix(k, "warden.dev/") {
				delete(res.Meta, k)
			}
		}
	}
	c.Result = res
	return nil
}

func (c *Call) tasks() []string {
	if c.Decision.Checked != nil {
		return c.Decision.Checked.Grant.TaskChain()
	}
	return nil
}

// ReasonUnvouched is the reason code of the event recorded just before a
// sensitive call that no control vouches for is forwarded.
const ReasonUnvouched = "sensitive_call_unvouched"

// recordUnvouched records, before it is forwarded, a sensitive call (egress,
// writes, destructive) that nobody accountable chose: the grant does not fix
// every one of its arguments and no human approved it. Detection's
// injection-then-sensitive-call rule contains a task on such a call after
// an injection finding. A call the operator pinned in every argument, or
// one a human approved, does what someone accountable chose, whatever the
// agent read: containing the task for it would only stop the user's work
// (the red-team runner measured that cost). The event must be recorded
// before the call runs, or detection could miss it: a failure denies.
func (c *Call) recordUnvouched() *Denial {
	if c.approved || !inspect.SensitiveSink(c.Tool.Labels) {
		return nil
	}
	unfixed := c.unfixedArgs()
	if len(unfixed) == 0 {
		return nil
	}
	e := events.New(events.ClassAPIActivity, 99, "gateway")
	e.ActivityName = "Other"
	e.StatusID, e.SeverityID, e.StatusCode = events.StatusSuccess, events.SeverityInformational, ReasonUnvouched
	e.Message = "sensitive call forwarded with arguments neither the grant fixes nor a human approved: " + strings.Join(unfixed, ", ")
	e.Metadata.CorrelationUID = c.Decision.Task
	e.Actor = &events.Actor{User: &events.User{UID: c.Caller.ID.String(), Name: c.Caller.Name, Type: "agent"}, Session: &events.Session{UID: c.session.id}}
	e.Warden = &events.Warden{Agent: c.Caller.ID.String(), Task: c.Decision.Task, Grant: c.Decision.Grant, Tool: c.Tool.ID, Reason: ReasonUnvouched,
		Attrs: map[string]string{"call": c.id, "unfixed": strings.Join(unfixed, ",")}}
	if err := c.g.sink.Emit(context.WithoutCancel(c.Ctx), e); err != nil {
		return &Denial{Code: authz.CodeUnrecorded, Message: "the call could not be recorded for detection, so it is not forwarded: " + err.Error()}
	}
	return nil
}

// unfixedArgs lists the call's top-level arguments the permitting grant
// entry does not fix, sorted; every argument when no grant was checked, and
// "(none)" for a call without arguments: a sensitive call with nothing to
// pin is vouched for by nobody.
func (c *Call) unfixedArgs() []string {
	var args map[string]json.RawMessage
	if err := json.Unmarshal(c.Args, &args); err != nil || len(args) == 0 {
		return []string{"(none)"}
	}
	var out []string
	for name := range args {
		if ch := c.Decision.Checked; ch == nil || !ch.Fixed(name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// upstreamFailed records a failed forward and turns it into a denial result.
func (c *Call) upstreamFailed(code, msg string) *Denial {
	e := events.New(events.ClassAPIActivity, 99, "gateway")
	e.ActivityName = "Other"
	e.StatusID, e.SeverityID, e.StatusCode, e.StatusDetail = events.StatusFailure, events.SeverityLow, code, msg
	e.Message = "tool call failed upstream"
	e.Metadata.CorrelationUID = c.Decision.Task
	e.Actor = &events.Actor{User: &events.User{UID: c.Caller.ID.String(), Name: c.Caller.Name, Type: "agent"}, Session: &events.Session{UID: c.session.id}}
	e.Warden = &events.Warden{Agent: c.Caller.ID.String(), Task: c.Decision.Task, Grant: c.Decision.Grant, Tool: c.Tool.ID, Reason: code,
		Attrs: map[string]string{"call": c.id}}
	if err := c.g.sink.Emit(context.WithoutCancel(c.Ctx), e); err != nil {
		c.g.log.Error("could not record a failed upstream call", "err", err)
	}
	return &Denial{Code: code, Message: msg}
}

// stageTaint marks the session tainted when it ingests the output of a tool
// labelled untrusted_output, or untrusted content a builtin server says its
// result carried (an untrusted memory entry): from now on, policy sees
// session.tainted, and memory writes from the session are untrusted.
func stageTaint(c *Call) *Denial {
	if c.Result == nil {
		return nil
	}
	c.untrustedRead() // the inbound stage gave the content to the taint record
	if c.g.ups[c.Tool.Server].cfg.Builtin != "" {
		if m, ok := c.Result.Meta[MetaTaint].(map[string]any); ok {
			var sources []string
			ids, _ := m["sources"].([]any)
			for _, id := range ids {
				if s, ok := id.(string); ok && len(s) < 1024 {
					sources = append(sources, s)
				}
			}
			content, _ := m["content"].(string)
			c.Taint(content, sources...)
		}
		delete(c.Result.Meta, MetaTaint) // Warden's bookkeeping, not the agent's
	}
	return nil
}

// The in-process protocol with builtin upstreams (see Options.Builtin).
const (
	MetaCaller = "warden.dev/caller"
	MetaTaint  = "warden.dev/taint"
)

// callerContext is what a builtin server learns of the caller.
func (c *Call) callerContext() map[string]any {
	m := map[string]any{"agent": c.Caller.ID.String(), "name": c.Caller.Name, "task": c.Decision.Task,
		"session": c.session.id, "call": c.id}
	if r := c.Caller.Record; r != nil {
		m["owner"], m["model"], m["tier"] = r.Owner, r.Model, r.Tier.String()
	}
	if src := c.Sources(); len(src) > 0 {
		m["sources"] = src
	}
	return m
}

// progressRoute maps a progress token the gateway sent upstream back to the
// agent's session and token.
type progressRoute struct {
	ss    *mcp.ServerSession
	token any
}

func (g *Gateway) forwardProgress(ctx context.Context, p *mcp.ProgressNotificationParams) {
	tok, ok := p.ProgressToken.(string)
	if !ok {
		return
	}
	v, ok := g.progress.Load(tok)
	if !ok {
		return
	}
	r := v.(progressRoute)
	_ = r.ss.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: r.token, Progress: p.Progress, Total: p.Total, Message: p.Message})
}

// callTool runs one tools/call through the pipeline.
func (g *Gateway) callTool(ctx context.Context, req *mcp.CallToolRequest, id string) (*mcp.CallToolResult, error) {
	ra := g.requestAuth(req.Extra)
	if ra == nil {
		return nil, errors.New("unauthenticated request")
	}
	t, ok := g.tool(id)
	if !ok {
		return nil, fmt.Errorf("tool %s is no longer served", id)
	}
	c := &Call{Ctx: ctx, Tool: t, Args: req.Params.Arguments, Caller: ra.caller, Started: time.Now(),
		g: g, auth: ra, session: g.sessions.get(req.Session, ra.caller.ID.String()), req: req, id: randomKey()[:16]}
	for _, s := range g.stages {
		if d := s.Run(c); d != nil {
			if d.Stage == "" {
				d.Stage = s.Name
			}
			if d.Code == "cancelled" {
				return nil, ctx.Err()
			}
			return denialResult(c, d), nil
		}
	}
	if c.Result == nil {
		// A pipeline without an upstream stage forwards nothing.
		return denialResult(c, &Denial{Stage: "pipeline", Code: "not_forwarded", Message: "no stage forwarded the call"}), nil
	}
	return c.Result, nil
}

// denialResult is a refused call as the agent sees it: a tool result with
// isError, a sentence for the model and the decision in _meta for code.
func denialResult(c *Call, d *Denial) *mcp.CallToolResult {
	reasons := d.Reasons
	if reasons == nil {
		reasons = []authz.Reason{{Source: d.Stage, Code: d.Code, Message: d.Message}}
	}
	dec := map[string]any{"allow": false, "code": d.Code, "stage": d.Stage, "tool": c.Tool.ID, "reasons": reasons}
	if c.Decision.Task != "" {
		dec["task"] = c.Decision.Task
	}
	if len(c.Decision.Policies) > 0 {
		dec["policies"] = c.Decision.Policies
	}
	return &mcp.CallToolResult{
		IsError: true,
		Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("Warden refused %s (%s): %s", c.Tool.ID, d.Code, d.Message)}},
		Meta:    mcp.Meta{MetaDecision: dec},
	}
}

// requestAuth returns what the HTTP layer verified for this request.
func (g *Gateway) requestAuth(extra *mcp.RequestExtra) *requestAuth {
	if extra == nil || extra.Header == nil {
		return nil
	}
	v, ok := g.requests.Load(extra.Header.Get(headerInternal))
	if !ok {
		return nil
	}
	return v.(*requestAuth)
}

// middleware filters tools/list down to what the caller's grant names and
// policy does not rule out, for the server fronting upstream (all when "").
func (g *Gateway) middleware(upstream string) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return g.filterList(upstream, next)
	}
}

func (g *Gateway) filterList(upstream string, next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		// The aggregate endpoint's sessions, known here from their
		// initialize on, can have their plain tool calls served without
		// the SDK's hand-offs (fastcall.go).
		if ss, ok := req.GetSession().(*mcp.ServerSession); ok && upstream == "" && method == "initialize" {
			if ra := g.requestAuth(req.GetExtra()); ra != nil {
				g.sessions.get(ss, ra.caller.ID.String()).aggregate.Store(true)
			}
		}
		switch method {
		case "tools/list", "resources/list", "prompts/list":
		case "tools/call":
			growStack(0) // see stack.go
			return next(ctx, method, req)
		default:
			return next(ctx, method, req)
		}
		res, err := next(ctx, method, req)
		if err != nil {
			return nil, err
		}
		v := g.viewer(ctx, g.requestAuth(req.GetExtra()))
		switch r := res.(type) {
		case *mcp.ListToolsResult:
			r.Tools = filter(r.Tools, func(mt *mcp.Tool) bool {
				t, ok := g.tool(servedID(upstream, mt.Name))
				return ok && t.Quarantine == "" && v.may(ctx, policy.Call, t.ID, t.Policy())
			})
		case *mcp.ListResourcesResult:
			r.Resources = filter(r.Resources, func(mr *mcp.Resource) bool {
				server := g.resourceServer(upstream, mr.URI)
				return server != "" && v.may(ctx, policy.Read, toolID(server, ReadResource), policy.Resource{Server: server, URI: mr.URI})
			})
		case *mcp.ListPromptsResult:
			r.Prompts = filter(r.Prompts, func(mp *mcp.Prompt) bool {
				server, name, ok := upstream, mp.Name, upstream != ""
				if !ok {
					server, name, ok = splitToolID(mp.Name)
				}
				return ok && v.may(ctx, policy.Read, toolID(server, GetPrompt), policy.Prompt{Server: server, Name: name})
			})
		}
		return res, nil
	}
}

func filter[T any](in []T, keep func(T) bool) []T {
	out := make([]T, 0, len(in))
	for _, x := range in {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// servedID is the id of a tool as a server lists it: server.tool on the
// aggregate endpoint, the bare name on a per-upstream one.
func servedID(upstream, name string) string {
	if upstream == "" {
		return name
	}
	return toolID(upstream, name)
}

// resourceServer is the upstream serving a resource URI.
func (g *Gateway) resourceServer(upstream, uri string) string {
	if upstream != "" {
		return upstream
	}
	for _, name := range g.order {
		u := g.ups[name]
		u.mu.RLock()
		for _, r := range u.resources {
			if r.URI == uri {
				u.mu.RUnlock()
				return name
			}
		}
		u.mu.RUnlock()
	}
	return ""
}

// viewer decides what a caller sees in lists: what its task's grant names
// (and every ancestor's) and policy does not rule out whatever the
// arguments. Without a valid grant an agent sees nothing.
type viewer struct {
	g       *Gateway
	visible func(string) bool
	agent   policy.Agent
	task    policy.Task
}

func (g *Gateway) viewer(ctx context.Context, ra *requestAuth) *viewer {
	v := &viewer{g: g, visible: func(string) bool { return false }}
	if ra == nil {
		return v
	}
	visible, gr, err := g.grants.Visible(ctx, grant.Call{Agent: ra.caller, Token: ra.grant, MTLS: ra.mtls, DPoP: ra.dpop, Method: ra.method, URL: ra.url})
	if err != nil {
		g.log.Debug("list with no usable grant", "agent", ra.caller.ID, "err", err)
		return v
	}
	v.visible = visible
	v.agent = policy.Agent{Name: ra.caller.Name, SPIFFEID: ra.caller.ID.String()}
	if r := ra.caller.Record; r != nil {
		v.agent.Owner, v.agent.Model, v.agent.Tier, v.agent.Labels = r.Owner, r.Model, r.Tier.String(), r.Labels
	}
	v.task = policy.Task{ID: gr.Task, Intent: gr.Intent, Ancestors: gr.TaskChain()[1:]}
	return v
}

func (v *viewer) may(ctx context.Context, action policy.Action, grantID string, target policy.Target) bool {
	if !v.visible(grantID) {
		return false
	}
	return v.g.policy.Precheck(ctx, policy.Request{Agent: v.agent, Action: action, Target: target, Task: v.task}).Allow
}

// onRevoke cancels the calls in flight under the revoked tasks.
func (g *Gateway) onRevoke(_ context.Context, rev grant.Revocation) {
	revoked := map[string]bool{}
	for _, t := range rev.Tasks {
		revoked[t] = true
	}
	n := g.sessions.cancelWhere(func(c *inflightCall) bool {
		for _, t := range c.tasks {
			if revoked[t] {
				return true
			}
		}
		return false
	}, fmt.Errorf("%w (%s)", errRevoked, rev.Reason), "")
	if n > 0 {
		g.log.Info("cancelled calls in flight under revoked tasks", "calls", n, "reason", rev.Reason)
	}
}

// DisconnectAgent cancels an agent's calls in flight and closes its
// sessions: for an agent that was just disabled or deleted.
func (g *Gateway) DisconnectAgent(agent, reason string) {
	g.sessions.cancelWhere(func(c *inflightCall) bool { return c.agent == agent }, fmt.Errorf("%w (%s)", errRevoked, reason), agent)
}
