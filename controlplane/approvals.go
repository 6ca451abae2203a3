package controlplane

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/warden-run/warden/approval"
	"github.com/warden-run/warden/identity"
)

// Approvals is what the approval routes need: *approval.Service.
type Approvals interface {
	List(ctx context.Context, status approval.Status, limit int) ([]approval.Approval, error)
	Get(ctx context.Context, id string) (*approval.Approval, error)
	Decide(ctx context.Context, id, decider string, approve bool, note string) (*approval.Approval, error)
}

// ApprovalDecision decides a held call.
type ApprovalDecision struct {
	Decision string `json:"decision"` // "approve" or "deny"
	Note     string `json:"note,omitempty"`
}

// ApprovalList is a list of approvals, newest first.
type ApprovalList struct {
	Approvals []approval.Approval `json:"approvals"`
}

// approvalRoutes let operators see and decide the calls held for a human.
// Only an /admin/ identity may call them; approval.Service checks the
// decider's role once more.
func (s *Server) approvalRoutes() []route {
	return []route{
		{pattern: "GET /v1/approvals", roles: operators, summary: "list calls held for approval", h: s.withApprovals(s.listApprovals)},
		{pattern: "GET /v1/approvals/{id}", roles: operators, summary: "show a held call", h: s.withApprovals(s.getApproval)},
		{pattern: "POST /v1/approvals/{id}", roles: operators, summary: "approve or deny a held call", h: s.withApprovals(s.decideApproval)},
	}
}

func (s *Server) withApprovals(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *identity.Caller) error {
		if s.approvals == nil {
			return &APIError{Code: "approvals_not_configured", Message: "this control plane serves no approvals (Options.Approvals is not set)"}
		}
		return h(w, r, c)
	}
}

// approvalError maps the approval service's refusals to API errors.
func approvalError(err error) error {
	var ae *approval.Error
	if errors.As(err, &ae) {
		return &APIError{Code: ae.Code, Message: ae.Msg}
	}
	return err
}

// approvalStatus is the HTTP status of an approval refusal.
func approvalStatus(code string) (int, bool) {
	switch code {
	case approval.CodeUnknown:
		return http.StatusNotFound, true
	case approval.CodeDecided, approval.CodeExpired:
		return http.StatusConflict, true
	case approval.CodeForbidden:
		return http.StatusForbidden, true
	case "approvals_not_configured":
		return http.StatusServiceUnavailable, true
	}
	return 0, false
}

func (s *Server) listApprovals(w http.ResponseWriter, r *http.Request, _ *identity.Caller) error {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	as, err := s.approvals.List(r.Context(), approval.Status(r.URL.Query().Get("status")), limit)
	if err != nil {
		return approvalError(err)
	}
	writeJSON(w, http.StatusOK, ApprovalList{Approvals: as})
	return nil
}

func (s *Server) getApproval(w http.ResponseWriter, r *http.Request, _ *identity.Caller) error {
	a, err := s.approvals.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return approvalError(err)
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

func (s *Server) decideApproval(w http.ResponseWriter, r *http.Request, c *identity.Caller) error {
	var req ApprovalDecision
	if err := decode(r, &req); err != nil {
		return err
	}
	var approve bool
	switch req.Decision {
	case "approve":
		approve = true
	case "deny":
	default:
		return &APIError{Code: "invalid_input", Message: `decision: want "approve" or "deny"`}
	}
	a, err := s.approvals.Decide(r.Context(), r.PathValue("id"), c.ID.String(), approve, req.Note)
	if err != nil {
		return approvalError(err)
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

// Approvals lists approvals; status "" lists all, "pending" the open ones.
func (c *Client) Approvals(ctx context.Context, status string, limit int) ([]approval.Approval, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/approvals"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out ApprovalList
	return out.Approvals, c.do(ctx, http.MethodGet, path, nil, &out)
}

// Approval shows one approval.
func (c *Client) Approval(ctx context.Context, id string) (*approval.Approval, error) {
	var out approval.Approval
	return &out, c.do(ctx, http.MethodGet, "/v1/approvals/"+url.PathEscape(id), nil, &out)
}

// DecideApproval approves or denies a held call.
func (c *Client) DecideApproval(ctx context.Context, id string, approve bool, note string) (*approval.Approval, error) {
	d := ApprovalDecision{Decision: "deny", Note: note}
	if approve {
		d.Decision = "approve"
	}
	var out approval.Approval
	return &out, c.do(ctx, http.MethodPost, "/v1/approvals/"+url.PathEscape(id), d, &out)
}
