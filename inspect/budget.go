package inspect

import (
	"fmt"
	"sync"
)

// VolumeBudget is a task's outbound data-volume budget: how many bytes of
// argument values its calls may send in total. It is a pure in-memory
// counter the gateway owns per task; persisting it (so a restart does not
// refill it) is the caller's job, through Used and NewVolumeBudgetUsed.
type VolumeBudget struct {
	mu    sync.Mutex
	limit int64
	used  int64
}

// NewVolumeBudget starts a budget of limit bytes (limit <= 0: unlimited).
func NewVolumeBudget(limit int64) *VolumeBudget { return &VolumeBudget{limit: limit} }

// NewVolumeBudgetUsed restores a budget with used bytes already spent.
func NewVolumeBudgetUsed(limit, used int64) *VolumeBudget {
	return &VolumeBudget{limit: limit, used: used}
}

// Reserve takes n bytes from the budget before a call is forwarded. It
// returns false, taking nothing, when n would exceed what remains.
func (b *VolumeBudget) Reserve(n int64) (bool, error) {
	if b == nil || b.limit <= 0 {
		return true, nil
	}
	if n < 0 {
		return false, fmt.Errorf("reserving %d bytes: negative", n)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.limit {
		return false, nil
	}
	b.used += n
	return true, nil
}

// Release returns n reserved bytes (a call that was not forwarded after all).
func (b *VolumeBudget) Release(n int64) {
	if b == nil || b.limit <= 0 || n <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if b.used < 0 {
		b.used = 0
	}
}

// Used is the bytes spent; Limit the budget (0: unlimited).
func (b *VolumeBudget) Used() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Limit is the budget in bytes (0: unlimited).
func (b *VolumeBudget) Limit() int64 {
	if b == nil {
		return 0
	}
	return b.limit
}
