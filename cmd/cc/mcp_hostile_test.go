package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// TestMCPImageNamesProbeNothing: an MCP client is not the operator, and
// the image names it sends must tell it nothing about the host and reach
// no registry unless the operator allowed the network. Names that are host
// paths are refused by their spelling; names with a slash that exist as
// host paths relative to the server's directory get the same answer as
// names that do not; and without --allow-network no name makes the server
// connect anywhere (a registry on loopback counts every request).
func TestMCPImageNamesProbeNothing(t *testing.T) {
	leakcheck.Check(t)
	var requests atomic.Int64
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.NotFound(w, r)
	}))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")

	// The server's working directory holds a file and a directory the
	// client tries to find out about.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "exists", "layout"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "exists", "image.tar"), []byte("not an archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	cmd := ccCommand(context.Background(), cache, "mcp")
	cmd.Dir = dir
	client := mcp.NewClient(&mcp.Implementation{Name: "cc-test", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	answer := func(image string) string {
		t.Helper()
		res := call(t, s, "create_sandbox", m{"image": image})
		if !res.IsError {
			t.Fatalf("create_sandbox(%q) succeeded", image)
		}
		// The name itself is in the answer; what is left must not depend
		// on the host.
		return strings.ReplaceAll(text(res), image, "NAME")
	}
	for _, p := range []string{"/etc", "/etc/passwd", "./x", "../x", ".", dir, "x.tar"} {
		if got := answer(p); !strings.Contains(got, "host paths are not accepted") {
			t.Errorf("create_sandbox(%q): %q, want host paths refused", p, got)
		}
	}
	for _, pair := range [][2]string{
		{"exists/layout", "absent/layout"},
		{"exists/image.tar/x", "absent/image.tar/x"},
		{"exists", "absent"},
		{"etc/passwd", "etc/nopasswd"},
	} {
		a, b := answer(pair[0]), answer(pair[1])
		if a != b {
			t.Errorf("the answers tell %q from %q:\n%s\n%s", pair[0], pair[1], a, b)
		}
		if !strings.Contains(a, "--allow-network") {
			t.Errorf("create_sandbox(%q): %q, want it to name --allow-network", pair[0], a)
		}
	}
	if got := answer(host + "/test/busybox:1"); !strings.Contains(got, "--allow-network") {
		t.Errorf("an image not in the store, without --allow-network: %q", got)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the server without --allow-network sent %d requests to a registry", n)
	}
	if err := s.Close(); err != nil {
		t.Errorf("cc mcp: %v", err)
	}
	noSandboxLeft(t, cache)
}
