package ipc

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestDecideUseHelper(t *testing.T) {
	for _, tc := range []struct {
		env, goos string
		want      bool
	}{
		{"", "linux", false}, {"", "darwin", true}, {"", "windows", true}, {"", "freebsd", false},
		{"1", "linux", true}, {"TRUE", "linux", true}, {"Yes", "linux", true}, {"on", "linux", true},
		{"0", "darwin", false}, {"False", "darwin", false}, {"NO", "windows", false}, {"off", "darwin", false},
		{"maybe", "linux", false}, {"maybe", "darwin", true}, {" 1 ", "linux", true},
	} {
		if got := decideUseHelper(tc.env, tc.goos); got != tc.want {
			t.Errorf("decideUseHelper(%q, %q) = %v, want %v", tc.env, tc.goos, got, tc.want)
		}
	}
}

func TestUseHelperCachesUntilReset(t *testing.T) {
	t.Setenv("CC_USE_HELPER", "1")
	ResetUseHelper()
	t.Cleanup(ResetUseHelper)
	if !UseHelper() {
		t.Fatal("CC_USE_HELPER=1 ignored")
	}
	os.Setenv("CC_USE_HELPER", "0")
	if !UseHelper() {
		t.Fatal("UseHelper did not cache its answer")
	}
	ResetUseHelper()
	if UseHelper() {
		t.Fatal("ResetUseHelper did not reset")
	}
}

func TestSocketPath(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		p := SocketPath()
		if len(p) > maxSocketPath {
			t.Fatalf("%q is %d bytes, longer than sun_path allows", p, len(p))
		}
		if seen[p] {
			t.Fatalf("SocketPath repeated %q", p)
		}
		seen[p] = true
	}
	// With every preferred directory too long for sun_path, the socket
	// goes to a private directory in /tmp.
	long := "/" + strings.Repeat("d", 120)
	t.Setenv("TMPDIR", long)
	t.Setenv("XDG_RUNTIME_DIR", long)
	t.Setenv("XDG_CACHE_HOME", long)
	if p := SocketPath(); len(p) > maxSocketPath || !strings.HasPrefix(p, "/tmp/") {
		t.Fatalf("with long preferred directories: %q", p)
	}
}

func TestFindHelperOrder(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the test writes Unix executables")
	}
	dir := t.TempDir()
	write := func(p string) string {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("PATH", filepath.Join(dir, "path"))
	t.Setenv("HOME", filepath.Join(dir, "home"))
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("CC_HELPER_PATH", "")

	_, err := FindHelper("")
	var nf *HelperNotFoundError
	if !errors.As(err, &nf) || len(nf.SearchedPaths) < 3 || nf.SearchedPaths[len(nf.SearchedPaths)-1] != "$PATH" {
		t.Fatalf("nothing installed: %v", err)
	}
	if !strings.Contains(err.Error(), "cc-helper not found") {
		t.Errorf("message %q", err)
	}

	inPath := write(filepath.Join(dir, "path", HelperName))
	if p, err := FindHelper(""); err != nil || p != inPath {
		t.Fatalf("PATH: %q %v", p, err)
	}
	user := write(filepath.Join(dir, "home", ".local", "share", "cc", "bin", HelperName))
	if p, err := FindHelper(""); err != nil || p != user {
		t.Fatalf("user dir beats PATH: %q %v", p, err)
	}
	lib := write(filepath.Join(dir, "lib", HelperName))
	if p, err := FindHelper(filepath.Join(dir, "lib", "libcc.so")); err != nil || p != lib {
		t.Fatalf("next to the library beats the user dir: %q %v", p, err)
	}
	env := write(filepath.Join(dir, "env", "my-helper"))
	t.Setenv("CC_HELPER_PATH", env)
	if p, err := FindHelper(filepath.Join(dir, "lib", "libcc.so")); err != nil || p != env {
		t.Fatalf("CC_HELPER_PATH beats everything: %q %v", p, err)
	}
	_, err = SpawnHelper("")
	if err == nil {
		t.Fatal("a helper that never listens was accepted")
	}
}

func TestBufPoolClasses(t *testing.T) {
	if c := sizeClass(MaxMessageSize); c >= len(bufPools) {
		t.Fatalf("MaxMessageSize needs class %d, only %d pools", c, len(bufPools))
	}
	for _, n := range []int{minPooledSize, minPooledSize + 1, 1 << 20, MaxMessageSize} {
		b, p := getBuf(n)
		if len(b) != n || p == nil || cap(*p) < n {
			t.Fatalf("getBuf(%d): len %d", n, len(b))
		}
		putBuf(p)
	}
	if b, p := getBuf(10); len(b) != 10 || p != nil {
		t.Fatal("small buffers must not be pooled")
	}
}
