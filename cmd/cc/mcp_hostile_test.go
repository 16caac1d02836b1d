package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

// TestMCPCallsBounded: a client's calls in progress at once are bounded
// (--max-calls), refused past it rather than queued with their
// arguments; a command's stdin and a file's content are bounded
// (--max-input); and a SIGTERM ends a call that waits on a long command
// at once, well before the command's time limit.
func TestMCPCallsBounded(t *testing.T) {
	leakcheck.Check(t)
	cache := t.TempDir()
	s, pid := startMCP(t, cache, "--max-calls", "1", "--max-input", "1000", "--command-timeout", "1h")
	var created createOut
	callOK(t, s, "create_sandbox", m{}, &created)
	callErr(t, s, "run_command", m{"id": created.ID, "command": []string{"cat"}, "stdin": strings.Repeat("x", 1001)}, "--max-input")
	callErr(t, s, "write_file", m{"id": created.ID, "path": "/big", "content": strings.Repeat("x", 1001)}, "--max-input")
	var wrote writeOut
	callOK(t, s, "write_file", m{"id": created.ID, "path": "/small", "content": strings.Repeat("x", 1000)}, &wrote)

	long := make(chan *mcp.CallToolResult, 1)
	go func() {
		res, _ := s.CallTool(context.Background(), &mcp.CallToolParams{Name: "run_command",
			Arguments: m{"id": created.ID, "command": []string{"sleep", "3600"}}})
		long <- res
	}()
	// Once the long call is in progress, every other call is refused.
	for {
		res := call(t, s, "list_sandboxes", m{})
		if res.IsError && strings.Contains(text(res), "in progress") {
			break
		}
		if res.IsError {
			t.Fatalf("list_sandboxes: %s", text(res))
		}
	}
	if err := syscall.Kill(pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-long:
	case <-time.After(5 * time.Minute): // far beyond the moment it takes; far below the command's hour
		t.Fatal("cc mcp's call still waits on its command after SIGTERM")
	}
	s.Close()
	noSandboxLeft(t, cache)
}

// TestMCPListFilesBounded: list_files of a directory the sandbox filled
// with many long names holds one listing's worth of entries, not the
// whole directory, however many calls ask at once.
func TestMCPListFilesBounded(t *testing.T) {
	if raceEnabled {
		// cc built with the race detector holds shadow memory for all it
		// touches: its peak grows past the bound with the fix too (972
		// MiB). make test's rootless phase runs this test without it.
		t.Skip("peak memory is not the server's own under the race detector; make test's rootless phase checks it")
	}
	leakcheck.Check(t)
	cache := t.TempDir()
	s, pid := startMCP(t, cache, "--command-timeout", "10m")
	var created createOut
	callOK(t, s, "create_sandbox", m{}, &created)
	var ran runOut
	callOK(t, s, "run_command", m{"id": created.ID, "command": []string{"sh", "-c",
		"mkdir /tmp/d && cd /tmp/d && seq -f '%0200.0f' 1 250000 | xargs touch && ls -f | wc -l"}}, &ran)
	if strings.TrimSpace(ran.Stdout) != "250002" {
		t.Fatalf("making the directory: %+v", ran)
	}
	before := peakRSS(t, pid())
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			var out listOut
			callOK(t, s, "list_files", m{"id": created.ID, "path": "/tmp/d"}, &out)
			if len(out.Entries) != maxListEntries || !out.Truncated {
				t.Errorf("list_files: %d entries, truncated %v; want %d and truncated", len(out.Entries), out.Truncated, maxListEntries)
			}
		})
	}
	wg.Wait()
	// A listing's answer costs the server some 30 MiB (its entries, their
	// JSON, the SDK's check of it against the tool's schema); 250000 names
	// of 200 bytes held as entries cost some 100 MiB more, a call: eight
	// calls that each held them all grew by a gigabyte.
	grew := peakRSS(t, pid()) - before
	t.Logf("cc mcp's peak memory grew by %d MiB for 8 listings", grew>>20)
	if grew > 512<<20 {
		t.Errorf("cc mcp's peak memory grew by %d MiB for 8 listings of %d entries", grew>>20, maxListEntries)
	}
	s.Close()
	noSandboxLeft(t, cache)
}

// peakRSS returns the peak resident memory of process pid in bytes.
func peakRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.Fields(rest)[0])
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestMCPPullGuarded: with --allow-network, the registry a client's image
// name chooses is reached as a sandbox's egress would be: never a service
// on the host's loopback, whose answer would then reach the client.
func TestMCPPullGuarded(t *testing.T) {
	leakcheck.Check(t)
	var requests atomic.Int64
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, "ADMIN-TOKEN=a-secret-of-a-loopback-service")
	}))
	defer svc.Close()
	cache := t.TempDir()
	s, _ := startMCP(t, cache, "--allow-network")
	res := call(t, s, "create_sandbox", m{"image": strings.TrimPrefix(svc.URL, "http://") + "/internal/admin:latest"})
	if !res.IsError || requests.Load() != 0 || strings.Contains(text(res), "a-secret") {
		t.Errorf("create_sandbox of an image on the host's loopback: %d requests reached it; error %v: %s", requests.Load(), res.IsError, text(res))
	}
	s.Close()
	noSandboxLeft(t, cache)
}

// TestMCPClientStopsReading: a client that stops reading (it closed its
// end of the server's standard output) makes the server's next answer
// fail, not kill it: it closes its sandboxes and leaves nothing behind.
func TestMCPClientStopsReading(t *testing.T) {
	leakcheck.Check(t)
	cache := t.TempDir()
	cmd := ccCommand(context.Background(), cache, "mcp")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	send := func(line string) { io.WriteString(stdin, line+"\n") }
	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`)
	r.ReadString('\n')
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"create_sandbox","arguments":{}}}`)
	if line, _ := r.ReadString('\n'); !strings.Contains(line, `"id":"`) {
		t.Fatalf("create_sandbox: %s", line)
	}
	stdout.Close() // the client reads no more
	send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"list_sandboxes","arguments":{}}}`)
	// The answer's write ends the server; should it not, the end of its
	// input does, a minute on.
	eof := time.AfterFunc(time.Minute, func() { stdin.Close() })
	err = cmd.Wait()
	eof.Stop()
	stdin.Close()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGPIPE {
		t.Errorf("cc mcp was killed by SIGPIPE, its sandboxes not closed")
	}
	noSandboxLeft(t, cache)
}

// TestMCPPullThroughProxy: with the operator's proxy configured, a pull
// of a client-chosen image connects only to the proxy, so the dialer's
// rules never saw where the proxy was asked to go: a metadata address, the
// host's unspecified address; and one to the proxy's own loopback address
// is sent to it direct, as to a registry. Such a request is refused before
// it reaches the proxy; one to an address the rules allow still goes
// through it.
func TestMCPPullThroughProxy(t *testing.T) {
	leakcheck.Check(t)
	var mu sync.Mutex
	var asked []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Method+" "+r.Host)
		mu.Unlock()
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, "ADMIN-TOKEN=what-the-proxy-fetched")
	}))
	defer proxy.Close()
	for _, v := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		t.Setenv(v, proxy.URL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	cache := t.TempDir()
	s, _ := startMCP(t, cache, "--allow-network")
	// The proxy's own host:port, on the host's loopback (never proxied),
	// is no registry either.
	own := strings.TrimPrefix(proxy.URL, "http://") + "/squid-internal-mgr/info:x"
	for _, image := range []string{"169.254.169.254/latest/meta-data:x", "0.0.0.0:8080/admin:x", "100.100.100.200/meta:x", own} {
		res := call(t, s, "create_sandbox", m{"image": image})
		if !res.IsError || strings.Contains(text(res), "ADMIN-TOKEN") {
			t.Errorf("create_sandbox of %s: error %v: %s", image, res.IsError, text(res))
		}
	}
	mu.Lock()
	if len(asked) != 0 {
		t.Errorf("the proxy was asked for refused destinations: %v", asked)
	}
	mu.Unlock()
	// A public address still goes through the proxy (which refuses it).
	if res := call(t, s, "create_sandbox", m{"image": "93.184.216.34/library/alpine:x"}); !res.IsError {
		t.Errorf("create_sandbox through a proxy that refuses everything: %s", text(res))
	}
	mu.Lock()
	if len(asked) == 0 {
		t.Errorf("a pull from a public address did not go through the proxy")
	}
	mu.Unlock()
	s.Close()
	noSandboxLeft(t, cache)
}
