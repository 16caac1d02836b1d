package helper

import "sync"

// clientLocks holds a lock for each client, made when first asked for.
// Its zero value is ready to use.
type clientLocks struct {
	mu sync.Mutex
	m  map[string]*sync.Mutex
}

// of returns client's lock.
func (l *clientLocks) of(client string) *sync.Mutex {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*sync.Mutex{}
	}
	m := l.m[client]
	if m == nil {
		m = new(sync.Mutex)
		l.m[client] = m
	}
	return m
}
