package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCacheMountSharing(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	inits := 0
	init := func(dir string) error {
		inits++
		return os.WriteFile(filepath.Join(dir, "made"), []byte("x"), 0o644)
	}
	a, err := s.CacheMount(ctx, "id", CacheShared, init)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CacheMount(ctx, "id", CacheShared, init)
	if err != nil {
		t.Fatal(err)
	}
	if a.Path != b.Path || inits != 1 {
		t.Errorf("shared: %s and %s, %d inits; want one directory made once", a.Path, b.Path, inits)
	}
	if _, err := os.Stat(filepath.Join(a.Path, "made")); err != nil {
		t.Errorf("init's file: %v", err)
	}

	// Locked waits while a shared user holds it.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.CacheMount(short, "id", CacheLocked, init); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("locked while in use: %v; want it to wait until the context ends", err)
	}
	// Private takes another directory while this one is busy.
	p, err := s.CacheMount(ctx, "id", CachePrivate, init)
	if err != nil {
		t.Fatal(err)
	}
	if p.Path == a.Path || inits != 2 {
		t.Errorf("private while in use: %s (the shared one is %s), %d inits", p.Path, a.Path, inits)
	}

	// Prune keeps what is held, then removes it once released.
	rep, err := s.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.CacheMounts != 0 {
		t.Errorf("Prune removed %d cache mounts in use", rep.CacheMounts)
	}
	a.Release()
	b.Release()
	p.Release()
	p.Release() // twice is fine
	l, err := s.CacheMount(ctx, "id", CacheLocked, init)
	if err != nil {
		t.Fatal(err)
	}
	if l.Path != a.Path {
		t.Errorf("locked once free: %s, want %s", l.Path, a.Path)
	}
	l.Release()
	u, err := s.Usage(ctx)
	if err != nil || u.CacheMounts != 2 || u.CacheBytes != 2 {
		t.Errorf("usage %+v %v; want 2 cache mounts of 1 byte each", u, err)
	}
	rep, err = s.Prune(ctx)
	if err != nil || rep.CacheMounts != 2 || rep.CacheBytes != 2 {
		t.Errorf("Prune %+v %v", rep, err)
	}

	// A failing init leaves nothing behind.
	if _, err := s.CacheMount(ctx, "other", CacheShared, func(string) error { return errors.New("no") }); err == nil {
		t.Error("a failing init was ignored")
	}
	if u, _ := s.Usage(ctx); u.CacheMounts != 0 || u.Temp != 0 {
		t.Errorf("after a failing init: %+v", u)
	}
}
