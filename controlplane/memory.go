package controlplane

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/memory"
)

// MemorySnapshotRequest names a snapshot of Warden's memory.
type MemorySnapshotRequest struct {
	Name string `json:"name"`
}

// MemorySnapshot is a snapshot just taken: every namespace's head.
type MemorySnapshot struct {
	Name      string           `json:"name"`
	CreatedBy string           `json:"created_by"`
	Heads     map[string]int64 `json:"heads"`
}

// MemorySnapshotList is every snapshot, oldest first.
type MemorySnapshotList struct {
	Snapshots []memory.SnapshotInfo `json:"snapshots"`
}

// MemoryRollbackRequest names the snapshot to roll back to.
type MemoryRollbackRequest struct {
	To string `json:"to"`
}

// MemoryRollbackResponse says how many entries were undone per namespace
// (namespaces with nothing after the snapshot are left out).
type MemoryRollbackResponse struct {
	To     string           `json:"to"`
	Undone map[string]int64 `json:"undone"`
}

// MemoryReleaseRequest names a quarantined entry, ns#seq.
type MemoryReleaseRequest struct {
	Entry string `json:"entry"`
}

// MemoryReleaseResponse is the release entry appended.
type MemoryReleaseResponse struct {
	Released string `json:"released"` // the quarantined entry
	By       string `json:"by"`       // the release entry, ns#seq
	Agent    string `json:"agent"`    // the operator who released it
}

// memoryRoutes serve Warden's memory to operators. Without a memory store
// they answer memory_not_configured.
func (s *Server) memoryRoutes() []route {
	return []route{
		{pattern: "POST /v1/memory/snapshots", roles: operators, summary: "snapshot every memory namespace", h: s.withMemory(s.memorySnapshot)},
		{pattern: "GET /v1/memory/snapshots", roles: operators, summary: "list memory snapshots", h: s.withMemory(s.memorySnapshots)},
		{pattern: "POST /v1/memory/rollback", roles: operators, summary: "roll memory back to a snapshot", h: s.withMemory(s.memoryRollback)},
		{pattern: "POST /v1/memory/release", roles: operators, summary: "release a quarantined memory entry", h: s.withMemory(s.memoryRelease)},
	}
}

func (s *Server) withMemory(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *identity.Caller) error {
		if s.memory == nil {
			return &APIError{Code: "memory_not_configured", Message: "this control plane serves no memory store (Options.Memory is not set)"}
		}
		return h(w, r, c)
	}
}

// memoryError maps the store's refusals to API errors; anything else is
// an internal error.
func memoryError(err error) error {
	switch {
	case errors.Is(err, memory.ErrNotFound):
		return &APIError{Code: "not_found", Message: err.Error()}
	case errors.Is(err, memory.ErrConflict):
		return &APIError{Code: "conflict", Message: err.Error()}
	case errors.Is(err, memory.ErrUnverified):
		return &APIError{Code: "memory_tampered", Message: err.Error()}
	}
	return err
}

func (s *Server) memorySnapshot(w http.ResponseWriter, r *http.Request, c *identity.Caller) error {
	var req MemorySnapshotRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Name == "" || len(req.Name) > 128 {
		return &APIError{Code: "invalid_input", Message: "name: a snapshot name is 1 to 128 characters"}
	}
	heads, err := s.memory.Snapshot(r.Context(), req.Name, c.ID.String())
	if err != nil {
		return memoryError(err)
	}
	writeJSON(w, http.StatusCreated, MemorySnapshot{Name: req.Name, CreatedBy: c.ID.String(), Heads: heads})
	return nil
}

func (s *Server) memorySnapshots(w http.ResponseWriter, r *http.Request, _ *identity.Caller) error {
	list, err := s.memory.Snapshots(r.Context())
	if err != nil {
		return err
	}
	if list == nil {
		list = []memory.SnapshotInfo{}
	}
	writeJSON(w, http.StatusOK, MemorySnapshotList{Snapshots: list})
	return nil
}

func (s *Server) memoryRollback(w http.ResponseWriter, r *http.Request, c *identity.Caller) error {
	var req MemoryRollbackRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.To == "" {
		return &APIError{Code: "invalid_input", Message: "to: name the snapshot to roll back to"}
	}
	undone, err := s.memory.Rollback(r.Context(), req.To, c.ID.String())
	if err != nil && len(undone) > 0 {
		return fmt.Errorf("rolling back to %q stopped part way (namespaces rolled back: %v; run it again to finish): %w", req.To, undone, err)
	}
	if err != nil {
		return memoryError(err)
	}
	writeJSON(w, http.StatusOK, MemoryRollbackResponse{To: req.To, Undone: undone})
	return nil
}

func (s *Server) memoryRelease(w http.ResponseWriter, r *http.Request, c *identity.Caller) error {
	var req MemoryReleaseRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if _, _, err := memory.ParseID(req.Entry); err != nil {
		return &APIError{Code: "invalid_input", Message: err.Error()}
	}
	e, err := s.memory.Release(r.Context(), req.Entry, c.ID.String())
	if err != nil {
		return memoryError(err)
	}
	writeJSON(w, http.StatusOK, MemoryReleaseResponse{Released: req.Entry, By: e.ID(), Agent: e.Agent})
	return nil
}
