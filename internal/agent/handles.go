package agent

import (
	"fmt"
	"sync"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// handleTable maps the numbers the host holds to the agent's objects (open
// files, commands). It is shared by every connection of the agent.
type handleTable struct {
	mu   sync.Mutex
	next uint64         // guarded by mu
	m    map[uint64]any // guarded by mu
}

func newHandleTable() *handleTable {
	return &handleTable{next: 1, m: make(map[uint64]any)}
}

// add stores v and returns its handle.
func (t *handleTable) add(v any) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.next
	t.next++
	t.m[h] = v
	return h
}

// all returns every object held.
func (t *handleTable) all() []any {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]any, 0, len(t.m))
	for _, v := range t.m {
		out = append(out, v)
	}
	return out
}

// lookup returns the object of type T that h names, or an error matching
// ipc.ErrInvalidHandle.
func lookup[T any](t *handleTable, h uint64) (T, error) {
	t.mu.Lock()
	v, ok := t.m[h]
	t.mu.Unlock()
	x, isT := v.(T)
	if !ok || !isT {
		var zero T
		return zero, &ipc.IPCError{Code: ipc.ErrCodeInvalidHandle, Message: fmt.Sprintf("handle %d: %v", h, ipc.ErrInvalidHandle)}
	}
	return x, nil
}

// take removes h, which must hold a T.
func take[T any](t *handleTable, h uint64) (T, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.m[h]
	x, isT := v.(T)
	if !ok || !isT {
		var zero T
		return zero, &ipc.IPCError{Code: ipc.ErrCodeInvalidHandle, Message: fmt.Sprintf("handle %d: %v", h, ipc.ErrInvalidHandle)}
	}
	delete(t.m, h)
	return x, nil
}
