package ns

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

func TestCheckHostHere(t *testing.T) {
	if err := checkHost(); err != nil {
		t.Fatalf("this host is expected to run namespace sandboxes: %v", err)
	}
}

// TestCheckFeatures shows the check hosts that lack each feature.
func TestCheckFeatures(t *testing.T) {
	good := map[string]string{
		"/proc/self/ns/user":                         "",
		"/proc/sys/user/max_user_namespaces":         "63000\n",
		"/proc/sys/kernel/unprivileged_userns_clone": "1\n",
		"/proc/filesystems":                          "nodev\tproc\n\text4\nnodev\toverlay\n",
	}
	reader := func(files map[string]string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if s, ok := files[p]; ok {
				return []byte(s), nil
			}
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
	}
	with := func(change map[string]string, drop ...string) map[string]string {
		m := map[string]string{}
		for k, v := range good {
			m[k] = v
		}
		for k, v := range change {
			m[k] = v
		}
		for _, k := range drop {
			delete(m, k)
		}
		return m
	}
	if err := checkFeatures(reader(good), 1000); err != nil {
		t.Fatalf("a capable host: %v", err)
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		euid  int
		want  string
	}{
		{"NoUserNamespaces", with(nil, "/proc/self/ns/user"), 0, "user namespaces"},
		{"UserNamespacesOff", with(map[string]string{"/proc/sys/user/max_user_namespaces": "0\n"}), 0, "max_user_namespaces"},
		{"UnprivilegedOff", with(map[string]string{"/proc/sys/kernel/unprivileged_userns_clone": "0\n"}), 1000, "unprivileged_userns_clone"},
		{"NoOverlay", with(map[string]string{"/proc/filesystems": "nodev\tproc\n\text4\n"}), 0, "overlayfs"},
	} {
		err := checkFeatures(reader(tc.files), tc.euid)
		if !errors.Is(err, ipc.ErrHypervisorUnavailable) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrHypervisorUnavailable naming %q", tc.name, err, tc.want)
		}
	}
	// Root does not need unprivileged user namespaces.
	if err := checkFeatures(reader(with(map[string]string{"/proc/sys/kernel/unprivileged_userns_clone": "0\n"})), 0); err != nil {
		t.Errorf("root on a host without unprivileged namespaces: %v", err)
	}
}
