package helper

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseServeFlags(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"allowMounts":["/srv/data/"],"clients":{"ci":{"maxInstances":3,"maxStoreMB":2048}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := ParseServeFlags([]string{"-listen", ":7443", "-tls-cert", "c", "-tls-key", "k", "-client-ca", "ca", "-policy", policy,
		"-allow-registry", "127.0.0.1", "-allow-registry", "fd00::1/64"})
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientGrace != DefaultClientGrace || c.Policy.AllowMounts[0] != "/srv/data" || c.Policy.Clients["ci"].MaxInstances != 3 || c.Policy.Clients["ci"].MaxStoreMB != 2048 {
		t.Fatalf("parsed %+v", c)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("fd00::/64")}; !slices.Equal(c.RegistryAllow, want) {
		t.Errorf("-allow-registry 127.0.0.1 and fd00::1/64: %v, want %v", c.RegistryAllow, want)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"allowMount":["/x"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.json")
	if err := os.WriteFile(huge, []byte(`{"clients":{"*":{"maxStoreMB":9007199254740993}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	negative := filepath.Join(dir, "negative.json")
	if err := os.WriteFile(negative, []byte(`{"clients":{"*":{"maxStoreMB":-1}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-listen", "127.0.0.1:1", "-insecure-loopback", "-policy", huge}, "maxStoreMB 9007199254740993 is more than"},
		{[]string{"-listen", "127.0.0.1:1", "-insecure-loopback", "-policy", negative}, "must not be negative"},
		{[]string{"-tls-cert", "c"}, "-listen is required"},
		{[]string{"-listen", ":1"}, "mutual TLS"},
		{[]string{"-listen", "0.0.0.0:1", "-insecure-loopback"}, "loopback"},
		{[]string{"-listen", "127.0.0.1:1", "-insecure-loopback", "-nope"}, "nope"},
		{[]string{"-listen", "127.0.0.1:1", "-insecure-loopback", "-policy", bad}, "unknown field"},
		{[]string{"-listen", "127.0.0.1:1", "-insecure-loopback", "extra"}, "unexpected argument"},
		{[]string{"-listen", "127.0.0.1:1", "-insecure-loopback", "-allow-registry", "registry.local"}, "allow-registry"},
	} {
		_, err := ParseServeFlags(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseServeFlags(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	if _, err := ParseServeFlags([]string{"-listen", "[::1]:1", "-insecure-loopback"}); err != nil {
		t.Errorf("loopback plaintext refused: %v", err)
	}
}

// TestClientLimitsPids: a client's sandbox gets the policy's maxPids
// unless it asked for fewer; a negative ask (the wire carries any int64)
// is no ask at all, never "no limit".
func TestClientLimitsPids(t *testing.T) {
	limited := ClientLimits{MaxPids: 16}
	for asked, want := range map[int64]int64{-1: 16, 0: 16, 8: 8, 100: 16} {
		if got := limited.pids(asked); got != want {
			t.Errorf("maxPids 16, asked %d: %d, want %d", asked, got, want)
		}
	}
	if got := (ClientLimits{}).pids(-1); got != 0 {
		t.Errorf("no maxPids, asked -1: %d, want 0 (none)", got)
	}
}
