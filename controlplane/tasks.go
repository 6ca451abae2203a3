package controlplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/authz"
	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/policy"
)

// TaskRequest opens a task. An agent opening its own task may omit Agent.
type TaskRequest struct {
	Agent      string      `json:"agent,omitempty"`
	Intent     string      `json:"intent"`
	Allow      grant.Scope `json:"allow"`
	Egress     []string    `json:"egress,omitempty"` // hosts the task's arguments may point at
	TTL        string      `json:"ttl,omitempty"`    // Go duration; default 15m
	Budget     int         `json:"budget,omitempty"`
	Delegation int         `json:"delegation,omitempty"`
}

// TaskResponse is a task with its grant token.
type TaskResponse struct {
	Task  grant.Task `json:"task"`
	Grant string     `json:"grant"`
}

// TaskList is a list of tasks.
type TaskList struct {
	Tasks []grant.Task `json:"tasks"`
}

// DelegateRequest hands part of a task to another agent (RFC 8693
// token-exchange semantics: the parent grant is the subject token).
type DelegateRequest struct {
	Grant      string      `json:"grant"` // the parent grant, held by the caller
	To         string      `json:"to"`    // the agent's name
	Intent     string      `json:"intent"`
	Allow      grant.Scope `json:"allow"`
	Egress     []string    `json:"egress,omitempty"` // within the parent's
	TTL        string      `json:"ttl,omitempty"`
	Budget     int         `json:"budget,omitempty"`
	Delegation int         `json:"delegation,omitempty"`
}

// RevokeRequest revokes a task.
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"`
}

// AuthorizeRequest asks for a decision on one call, for an enforcement point
// outside this process. The enforcement point authenticated the agent and
// says how possession of the agent's key was proven.
type AuthorizeRequest struct {
	Agent     string          `json:"agent"` // the agent's SPIFFE ID
	Grant     string          `json:"grant"`
	Tool      string          `json:"tool"`             // server.tool
	Labels    []string        `json:"labels,omitempty"` // the tool's risk labels; none means all five
	Arguments json.RawMessage `json:"arguments,omitempty"`
	Session   SessionFacts    `json:"session,omitempty"`
	Proof     Proof           `json:"proof"`
}

// SessionFacts are what the enforcement point knows of the agent's session.
type SessionFacts struct {
	ID           string   `json:"id,omitempty"`
	Tainted      bool     `json:"tainted,omitempty"`
	Findings     []string `json:"findings,omitempty"`
	TaintSources []string `json:"taint_sources,omitempty"`
}

// Proof says how the caller proved possession of its key: the thumbprint
// of the client certificate key seen in the mTLS handshake, or a DPoP proof
// with the method and URL of the request it was made for.
type Proof struct {
	MTLSThumbprint string `json:"mtls_thumbprint,omitempty"`
	DPoP           string `json:"dpop,omitempty"`
	Method         string `json:"method,omitempty"`
	URL            string `json:"url,omitempty"`
}

// PolicyRequest applies a policy file.
type PolicyRequest struct {
	Name    string `json:"name"`
	Source  string `json:"source"`
	Message string `json:"message,omitempty"`
}

// PolicyList is the stored policy versions, newest first.
type PolicyList struct {
	Versions []policy.Version `json:"versions"`
}

// taskRoutes need the grant service, policy and the decision point; a
// control plane built without them does not serve these routes.
func (s *Server) taskRoutes() []route {
	rs := []route{
		{pattern: "POST /v1/tasks", roles: []identity.Role{identity.RoleAgent, identity.RoleAdmin}, summary: "open a task and mint its grant", h: s.openTask},
		{pattern: "GET /v1/tasks", roles: []identity.Role{identity.RoleAgent, identity.RoleAdmin}, summary: "list tasks", h: s.listTasks},
		{pattern: "GET /v1/tasks/{id}", roles: []identity.Role{identity.RoleAgent, identity.RoleAdmin}, summary: "show a task", h: s.getTask},
		{pattern: "POST /v1/tasks/{id}/complete", roles: []identity.Role{identity.RoleAgent, identity.RoleAdmin}, summary: "complete a task", h: s.completeTask},
		{pattern: "POST /v1/tasks/{id}/revoke", roles: operators, summary: "revoke a task", h: s.revokeTask},
		{pattern: "POST /v1/tasks/{id}/delegate", roles: agents, summary: "delegate part of a task", h: s.delegateTask},
		{pattern: "POST /v1/authorize", roles: enforcers, summary: "decide one call", h: s.authorize},
		{pattern: "POST /v1/policies", roles: operators, summary: "apply a policy file", h: s.applyPolicy},
		{pattern: "GET /v1/policies", roles: operators, summary: "list policy versions", h: s.listPolicies},
	}
	for i := range rs {
		rs[i].needsGrants = true
	}
	return rs
}

func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, &APIError{Code: "invalid_input", Message: fmt.Sprintf("ttl %q: %v", s, err)}
	}
	return d, nil
}

func (s *Server) openTask(w http.ResponseWriter, r *http.Request, c *identity.Caller) error {
	var req TaskRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	ttl, err := parseTTL(req.TTL)
	if err != nil {
		return err
	}
	grantee := c.Record
	switch {
	case c.Role == identity.RoleAgent && req.Agent != "" && req.Agent != c.Name:
		return &APIError{Code: "forbidden", Message: "an agent opens tasks for itself only; an operator may open one for " + req.Agent}
	case c.Role == identity.RoleAdmin:
		if req.Agent == "" {
			return &APIError{Code: "invalid_input", Message: "agent: name the agent the task is for"}
		}
		if grantee, err = s.id.Get(r.Context(), identity.RoleAgent, req.Agent); err != nil {
			return err
		}
	}
	t, tok, err := s.grants.Open(r.Context(), grant.OpenRequest{Grantee: grantee, Requester: c.ID.String(), Intent: req.Intent,
		Scope: req.Allow, Egress: req.Egress, TTL: ttl, Budget: req.Budget, Delegation: req.Delegation})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, TaskResponse{Task: *t, Grant: tok})
	return nil
}

func (s *Server) listTasks(w http.ResponseWriter, r *http.Request, c *identity.Caller) error {
	agent := ""
	if name := r.URL.Query().Get("agent"); name != "" {
		id, err := identity.NewID(s.id.CA().TrustDomain(), identity.RoleAgent, name)
		if err != nil {
			return &APIError{Code: "invalid_input", Message: err.Error()}
		}
		agent = id.String()
	}
	if c.Role == identity.RoleAgent {
		if agent != "" && agent != c.ID.String() {
			return &APIError{Code: "forbidden", Message: "an agent sees its own tasks only"}
		}
		agent = c.ID.String()
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	tasks, err := s.grants.List(r.Context(), agent, r.URL.Query().Get("open") == "true", limit)
	if err != nil {
		return err
	}
	if tasks == nil {
		tasks = []grant.Task{}
	}
	writeJSON(w, http.StatusOK, TaskList{Tasks: tasks})
	return nil
}

// ownTask returns the task, refusing an agent that does not hold it.
func (s *Server) ownTask(r *http.Request, c *identity.Caller) (*grant.Task, error) {
	t, err := s.grants.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if c.Role == identity.RoleAgent && t.Agent != c.ID.String() {
		// Do not reveal other agents' tasks.
		return nil, &grant.Error{Code: grant.CodeTaskUnknown, Msg: fmt.Sprintf("no task %q", r.PathValue("id"))}
	}
	return t, nil
}

func (s *Server) getTask(w http.ResponseWriter, r *http.Request, c *identity.Caller) error {
	t, err := s.ownTask(r, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) completeTask(w http.ResponseWriter, r *http.Request, c *identity.Caller) error {
	if _, err := s.ownTask(r, c); err != nil {
		return err
	}
	t, err := s.grants.Complete(r.Context(), c.ID.String(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) revokeTask(w http.ResponseWriter, r *http.Request, c *identity.Caller) error {
	var req RevokeRequest
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			return err
		}
	}
	if req.Reason == "" {
		req.Reason = "revoked by " + c.ID.String()
	}
	t, err := s.grants.Revoke(r.Context(), c.ID.String(), r.PathValue("id"), req.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) delegateTask(w http.ResponseWriter, r *http.Request, c *identity.Caller) error {
	var req DelegateRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	ttl, err := parseTTL(req.TTL)
	if err != nil {
		return err
	}
	parent, err := s.grants.Verifier().Verify(req.Grant)
	if err != nil {
		return err
	}
	if parent.Task != r.PathValue("id") {
		return &APIError{Code: "invalid_input", Message: fmt.Sprintf("the grant is for task %s, not %s", parent.Task, r.PathValue("id"))}
	}
	to, err := s.id.Get(r.Context(), identity.RoleAgent, req.To)
	if err != nil {
		return err
	}
	t, tok, err := s.grants.Delegate(r.Context(), grant.DelegateRequest{Caller: c, ParentToken: req.Grant, To: to, Intent: req.Intent,
		Scope: req.Allow, Egress: req.Egress, TTL: ttl, Budget: req.Budget, Delegation: req.Delegation})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, TaskResponse{Task: *t, Grant: tok})
	return nil
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request, _ *identity.Caller) error {
	var req AuthorizeRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	id, err := spiffeid.FromString(req.Agent)
	if err != nil {
		return &APIError{Code: "invalid_input", Message: "agent: " + err.Error()}
	}
	server, name, ok := cutTool(req.Tool)
	if !ok {
		return &APIError{Code: "invalid_input", Message: "tool: want server.tool"}
	}
	call := grant.Call{Token: req.Grant, Tool: req.Tool, Args: req.Arguments, DPoP: req.Proof.DPoP, Method: req.Proof.Method, URL: req.Proof.URL}
	agent, err := s.verify.Lookup(id, identity.RoleAgent)
	if err != nil {
		// The agent itself is refused: still a decision, recorded as one.
		agent = nil
	}
	var d authz.Decision
	if agent == nil {
		code := string(identity.CodeOf(err))
		d = authz.Decision{Code: code, Reasons: []authz.Reason{{Source: "identity", Code: code, Message: err.Error()}}}
	} else {
		if req.Proof.MTLSThumbprint != "" {
			// The enforcement point saw this key in its mTLS handshake.
			agent.KeyThumbprint, call.MTLS = req.Proof.MTLSThumbprint, true
		}
		call.Agent = agent
		d = s.authz.Authorize(r.Context(), authz.Request{Call: call, Tool: policy.Tool{Server: server, Name: name, Labels: req.Labels},
			Session: policy.Session{ID: req.Session.ID, Tainted: req.Session.Tainted, Findings: req.Session.Findings, TaintSources: req.Session.TaintSources}})
	}
	if d.Reasons == nil {
		d.Reasons = []authz.Reason{}
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func cutTool(t string) (string, string, bool) {
	for i := 0; i < len(t); i++ {
		if t[i] == '.' {
			return t[:i], t[i+1:], i > 0 && i < len(t)-1
		}
	}
	return "", "", false
}

func (s *Server) applyPolicy(w http.ResponseWriter, r *http.Request, c *identity.Caller) error {
	var req PolicyRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Name == "" {
		req.Name = "policy.cedar"
	}
	v, err := s.policy.Apply(r.Context(), req.Name, []byte(req.Source), policy.Meta{By: c.ID.String(), Message: req.Message})
	if err != nil {
		var ce *policy.CompileError
		if errors.As(err, &ce) {
			return &APIError{Code: "invalid_policy", Message: err.Error()}
		}
		return err
	}
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func (s *Server) listPolicies(w http.ResponseWriter, r *http.Request, _ *identity.Caller) error {
	vs, err := s.policy.List(r.Context())
	if err != nil {
		return err
	}
	if vs == nil {
		vs = []policy.Version{}
	}
	writeJSON(w, http.StatusOK, PolicyList{Versions: vs})
	return nil
}

func grantStatus(c grant.Code) int {
	switch c {
	case grant.CodeInvalidInput, grant.CodeArgsInvalid, grant.CodeMalformed:
		return http.StatusBadRequest
	case grant.CodeTaskUnknown:
		return http.StatusNotFound
	case grant.CodeStateUnavailable, grant.CodeInternal:
		return http.StatusServiceUnavailable
	case grant.CodeMissing, grant.CodeWrongType, grant.CodeAlg, grant.CodeUntrusted, grant.CodeBadSignature,
		grant.CodeExpired, grant.CodeNotYetValid, grant.CodeWrongAudience:
		return http.StatusUnauthorized
	}
	return http.StatusForbidden
}
