package controlplane

import (
	"context"
	"net/http"

	"github.com/warden-run/warden/memory"
)

// MemorySnapshot records every memory namespace's head under name, signed.
func (c *Client) MemorySnapshot(ctx context.Context, name string) (*MemorySnapshot, error) {
	var out MemorySnapshot
	return &out, c.do(ctx, http.MethodPost, "/v1/memory/snapshots", MemorySnapshotRequest{Name: name}, &out)
}

// MemorySnapshots lists the memory snapshots, oldest first.
func (c *Client) MemorySnapshots(ctx context.Context) ([]memory.SnapshotInfo, error) {
	var out MemorySnapshotList
	return out.Snapshots, c.do(ctx, http.MethodGet, "/v1/memory/snapshots", nil, &out)
}

// MemoryRollback undoes, in every namespace, the entries written after the
// snapshot named to, by appending signed rollback entries.
func (c *Client) MemoryRollback(ctx context.Context, to string) (*MemoryRollbackResponse, error) {
	var out MemoryRollbackResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/memory/rollback", MemoryRollbackRequest{To: to}, &out)
}

// MemoryRelease serves a quarantined entry (ns#seq) after all, by
// appending a signed release entry.
func (c *Client) MemoryRelease(ctx context.Context, entry string) (*MemoryReleaseResponse, error) {
	var out MemoryReleaseResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/memory/release", MemoryReleaseRequest{Entry: entry}, &out)
}
