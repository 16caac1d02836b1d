//go:build !windows

package ipc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSocketDirRefusesOtherUsersPaths: the helper's socket directory is
// never reached through a directory or a symlink another host user
// controls, however far above it, and nothing is made there: whoever owns
// a directory on the way can rename what is below it and put a directory
// of their own in its place, where the sockets would then land and they
// could reach the helper. The socket goes to the next private directory
// instead.
func TestSocketDirRefusesOtherUsersPaths(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("playing another host user needs root; the race phase of make test runs this as root")
	}
	const mallory = 65534
	// tree makes, in a new directory short enough for sun_path, a
	// directory of theirs with one of root's in it, and a symlink of
	// theirs to a directory of root's.
	tree := func(t *testing.T) (theirs, rootsInTheirs, link, mine string) {
		base, err := os.MkdirTemp("", "sd")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(base) }) // the test's own tree: no sandbox writes it
		theirs, rootsInTheirs = filepath.Join(base, "mallory"), filepath.Join(base, "mallory", "tmp")
		mine, link = filepath.Join(base, "mine"), filepath.Join(base, "link")
		for _, d := range []string{theirs, rootsInTheirs, mine} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(mine, link); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(theirs, mallory, mallory); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(link, mallory, mallory); err != nil {
			t.Fatal(err)
		}
		return theirs, rootsInTheirs, link, mine
	}
	t.Run("a cache directory of one's own", func(t *testing.T) {
		_, _, _, mine := tree(t)
		t.Setenv("XDG_RUNTIME_DIR", "")
		t.Setenv("XDG_CACHE_HOME", filepath.Join(mine, "cache"))
		dir, err := SocketDir()
		if want := filepath.Join(mine, "cache", "cc", "run"); err != nil || dir != want {
			t.Fatalf("SocketDir() = %q, %v; want %s", dir, err, want)
		}
	})
	for _, c := range []struct {
		name string
		// env sets XDG_RUNTIME_DIR, XDG_CACHE_HOME and TMPDIR.
		env func(theirs, rootsInTheirs, link string) (runtime, cache, tmp string)
	}{
		{"a cache directory below theirs", func(theirs, _, _ string) (string, string, string) {
			return "", filepath.Join(theirs, "cache"), ""
		}},
		{"a cache directory through their symlink", func(_, _, link string) (string, string, string) {
			return "", filepath.Join(link, "cache"), ""
		}},
		{"a runtime directory through their symlink", func(_, _, link string) (string, string, string) {
			return link, "", ""
		}},
		{"a temporary directory of root's in theirs", func(_, rootsInTheirs, _ string) (string, string, string) {
			return "", "", rootsInTheirs
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			theirs, rootsInTheirs, link, mine := tree(t)
			runtime, cache, tmp := c.env(theirs, rootsInTheirs, link)
			if cache == "" {
				cache = "relative" // os.UserCacheDir refuses it
			}
			t.Setenv("XDG_RUNTIME_DIR", runtime)
			t.Setenv("XDG_CACHE_HOME", cache)
			t.Setenv("TMPDIR", tmp)
			dir, err := SocketDir()
			if err != nil {
				t.Fatal(err)
			}
			for _, bad := range []string{theirs, link, mine} {
				if strings.HasPrefix(dir, bad+"/") {
					t.Errorf("SocketDir() = %s, reached through %s", dir, bad)
				}
			}
			if _, err := os.Lstat(filepath.Join(theirs, "cache")); err == nil {
				t.Errorf("a directory was made in another user's directory")
			}
			if ents, _ := os.ReadDir(mine); len(ents) != 0 {
				t.Errorf("directories were made through another user's symlink: %v", ents)
			}
			if ents, _ := os.ReadDir(rootsInTheirs); len(ents) != 0 {
				t.Errorf("directories were made in another user's directory: %v", ents)
			}
		})
	}
}
