package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Lease keeps layers alive while a process uses them (a running sandbox's
// lower layers) without writing a record. It is a file lock: when the
// process ends, however it ends, the lease ends with it.
type Lease struct {
	path string
	lock *fileLock
}

// Lease keeps layers alive until Release. Every layer must be in the store
// (an error matching fs.ErrNotExist otherwise).
func (s *Store) Lease(ctx context.Context, layers []v1.Hash) (*Lease, error) {
	b, err := json.Marshal(layers)
	if err != nil {
		return nil, err
	}
	hold, err := s.shared(ctx)
	if err != nil {
		return nil, fmt.Errorf("locking layer store: %w", err)
	}
	defer hold.unlock()
	for _, l := range layers {
		if !s.HasLayer(l) {
			return nil, fmt.Errorf("lease: layer %s: %w", l, fs.ErrNotExist)
		}
	}
	path := s.path("leases", randomName()+".lease")
	l, err := tryLockFile(path, true)
	if err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	if _, err := l.f.Write(b); err != nil {
		l.unlock()
		os.Remove(path)
		return nil, fmt.Errorf("lease: %w", err)
	}
	return &Lease{path: path, lock: l}, nil
}

// Release ends the lease. It is safe to call twice, and on a nil Lease.
func (l *Lease) Release() error {
	if l == nil || l.lock == nil {
		return nil
	}
	err := os.Remove(l.path)
	l.lock.unlock()
	l.lock = nil
	return err
}
