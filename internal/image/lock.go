package image

import (
	"context"
	"errors"
	"os"
	"time"
)

// fileLock is a flock(2) lock on one open file description: two
// descriptors of the same file exclude each other even within a process,
// and the kernel drops the lock when its holder dies.
type fileLock struct {
	f *os.File
}

// lockFile takes a lock on path, creating the file; exclusive or shared.
// It waits, polling, until it has the lock or ctx is done.
func lockFile(ctx context.Context, path string, exclusive bool) (*fileLock, error) {
	l, err := tryLockFile(path, exclusive)
	if err == nil || !errors.Is(err, errLocked) {
		return l, err
	}
	wait := time.Millisecond
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		l, err := tryLockFile(path, exclusive)
		if err == nil || !errors.Is(err, errLocked) {
			return l, err
		}
		if wait < 50*time.Millisecond {
			wait *= 2
		}
		t.Reset(wait)
	}
}

// errLocked: another holder has the lock.
var errLocked = errors.New("locked")

// unlock releases the lock. It is safe on a nil lock and twice.
func (l *fileLock) unlock() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Close() // closing the only descriptor drops the lock
	l.f = nil
}
