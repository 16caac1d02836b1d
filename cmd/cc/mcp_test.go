package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// startMCP starts cc mcp with flags on the store at cache and connects to
// it over stdio with the SDK's command transport.
func startMCP(t *testing.T, cache string, flags ...string) (*mcp.ClientSession, func() int) {
	t.Helper()
	cmd := ccCommand(context.Background(), cache, append([]string{"mcp"}, flags...)...)
	stderr := new(bytes.Buffer)
	cmd.Stderr = stderr
	client := mcp.NewClient(&mcp.Implementation{Name: "cc-test", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// A generous grace: the transport's SIGTERM would hide a slow close.
	session, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Minute}, nil)
	if err != nil {
		t.Fatalf("connecting to cc mcp: %v\n%s", err, stderr)
	}
	t.Cleanup(func() {
		session.Close() // a second time, after a test that failed early
		if t.Failed() {
			t.Logf("cc mcp's stderr:\n%s", stderr)
		}
	})
	return session, func() int { return cmd.Process.Pid }
}

// call calls a tool and returns its result, failing t on a protocol error.
func call(t *testing.T, s *mcp.ClientSession, tool string, args any) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s(%v): %v", tool, args, err)
	}
	return res
}

// text is a result's text content.
func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// callOK calls a tool that must succeed and decodes its structured result
// into out.
func callOK(t *testing.T, s *mcp.ClientSession, tool string, args, out any) {
	t.Helper()
	res := call(t, s, tool, args)
	if res.IsError {
		t.Fatalf("%s(%v) failed: %s", tool, args, text(res))
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: decoding %s: %v", tool, b, err)
	}
}

// callErr calls a tool that must give an error result mentioning want.
func callErr(t *testing.T, s *mcp.ClientSession, tool string, args any, want string) {
	t.Helper()
	res := call(t, s, tool, args)
	if !res.IsError || !strings.Contains(text(res), want) {
		t.Errorf("%s(%v) = error %v, %q; want an error result mentioning %q", tool, args, res.IsError, text(res), want)
	}
}

type m = map[string]any

// TestMCP drives cc mcp with the Go SDK's client: it initializes, lists
// the tools, uses a sandbox's files and commands, makes every kind of bad
// call, and disconnects; every sandbox is then closed and nothing is left
// running.
func TestMCP(t *testing.T) {
	leakcheck.Check(t)
	ref, host := serveBusybox(t)
	cache := t.TempDir()
	// Without --allow-network the server pulls nothing: the image its
	// client names is in the store already.
	if r := runCCIn(t, cache, nil, "pull", ref); r.code != 0 {
		t.Fatalf("cc pull %s: %d %s", ref, r.code, r.stderr)
	}
	s, _ := startMCP(t, cache, "--max-sandboxes", "2", "--command-timeout", "10m")

	if info := s.InitializeResult().ServerInfo; info.Name != "cc" {
		t.Errorf("server name %q, want cc", info.Name)
	}
	tools, err := s.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if want := []string{"close_sandbox", "create_sandbox", "list_files", "list_sandboxes", "read_file", "run_command", "write_file"}; !slices.Equal(names, want) {
		t.Errorf("tools %q, want %q", names, want)
	}

	var created createOut
	callOK(t, s, "create_sandbox", m{}, &created)
	id := created.ID
	if id == "" || created.Image != "host" || created.Network {
		t.Fatalf("create_sandbox() = %+v; want an id, the default image host, no network", created)
	}
	var written writeOut
	callOK(t, s, "write_file", m{"id": id, "path": "/work/dir/hello.txt", "content": "hello from mcp\n"}, &written)
	if written.Bytes != 15 {
		t.Errorf("write_file wrote %d bytes, want 15", written.Bytes)
	}
	var ran runOut
	callOK(t, s, "run_command", m{"id": id, "command": []string{"cat", "/work/dir/hello.txt"}}, &ran)
	if ran != (runOut{Stdout: "hello from mcp\n"}) {
		t.Errorf("cat of the written file: %+v", ran)
	}
	var read readOut
	callOK(t, s, "read_file", m{"id": id, "path": "/work/dir/hello.txt"}, &read)
	if read != (readOut{Content: "hello from mcp\n", Size: 15}) {
		t.Errorf("read_file: %+v", read)
	}
	var listed listOut
	callOK(t, s, "list_files", m{"id": id, "path": "/work/dir"}, &listed)
	if len(listed.Entries) != 1 || listed.Entries[0] != (listEntry{Name: "hello.txt", Type: "file", Size: 15, Mode: "-rw-r--r--"}) {
		t.Errorf("list_files: %+v", listed)
	}

	// Exit codes, stderr, stdin, env and workdir; a time limit; a
	// background process that keeps the output open.
	callOK(t, s, "run_command", m{"id": id, "command": []string{"sh", "-c", `read x; echo "$x $V $(pwd)"; echo err >&2; exit 3`},
		"stdin": "in\n", "env": []string{"V=v"}, "workdir": "/work"}, &ran)
	if ran != (runOut{ExitCode: 3, Stdout: "in v /work\n", Stderr: "err\n"}) {
		t.Errorf("run_command with stdin, env, workdir: %+v", ran)
	}
	callOK(t, s, "run_command", m{"id": id, "command": []string{"sleep", "1000"}, "timeout_seconds": 1}, &ran)
	if !ran.TimedOut || ran.ExitCode != 128+int(syscall.SIGKILL) {
		t.Errorf("a command past its time limit: %+v; want timed out, killed", ran)
	}
	callOK(t, s, "run_command", m{"id": id, "command": []string{"sh", "-c", "sleep 1000 & echo started"}}, &ran)
	if ran.ExitCode != 0 || ran.Stdout != "started\n" {
		t.Errorf("a command leaving a background process: %+v", ran)
	}
	callOK(t, s, "run_command", m{"id": id, "command": []string{"sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x"}}, &ran)
	if !ran.Truncated || len(ran.Stdout) > 1<<20+100 || !strings.HasPrefix(ran.Stdout, "xxx") || !strings.HasSuffix(ran.Stdout, "xxx") {
		t.Errorf("3 MB of output: truncated %v, %d bytes returned; want its first and last parts", ran.Truncated, len(ran.Stdout))
	}

	// Bytes that are not text travel in base64.
	bin := []byte{0, 0xff, 0xfe, '\n'}
	callOK(t, s, "write_file", m{"id": id, "path": "/work/bin", "content": base64.StdEncoding.EncodeToString(bin), "base64": true, "mode": "700"}, &written)
	callOK(t, s, "read_file", m{"id": id, "path": "/work/bin"}, &read)
	if got, _ := base64.StdEncoding.DecodeString(read.Content); !read.Base64 || !bytes.Equal(got, bin) {
		t.Errorf("read_file of binary content: %+v", read)
	}
	callOK(t, s, "list_files", m{"id": id, "path": "/work"}, &listed)
	if len(listed.Entries) != 2 || listed.Entries[0] != (listEntry{Name: "bin", Type: "file", Size: 4, Mode: "-rwx------"}) || listed.Entries[1].Type != "dir" {
		t.Errorf("list_files /work: %+v", listed.Entries)
	}

	// Bad calls get error results; files code in the sandbox made to trap
	// the server (a FIFO whose open waits, an endless device) too.
	callOK(t, s, "run_command", m{"id": id, "command": []string{"sh", "-c", "mkfifo /work/fifo && head -c 2000000 /dev/zero > /work/big"}}, &ran)
	zero := "sha256:" + strings.Repeat("0", 64)
	for _, c := range []struct {
		tool string
		args any
		want string
	}{
		{"create_sandbox", m{"image": host + "/test/nothing:1"}, "--allow-network"},
		{"create_sandbox", m{"image": zero}, zero},
		{"create_sandbox", m{"image": "/etc"}, "host paths are not accepted"},
		{"create_sandbox", m{"memory_mb": -1}, "negative"},
		{"create_sandbox", m{"cpus": "many"}, "cpus"},
		{"create_sandbox", m{"network": true}, "--allow-network"},
		{"create_sandbox", m{"no_such_argument": 1}, "no_such_argument"},
		{"run_command", m{}, "id"},
		{"run_command", m{"id": id}, "command"},
		{"run_command", m{"id": id, "command": []string{}}, "command"},
		{"run_command", m{"id": "no-such-sandbox", "command": []string{"true"}}, "no-such-sandbox"},
		{"run_command", m{"id": id, "command": []string{"no-such-program"}}, "no-such-program"},
		{"run_command", m{"id": id, "command": []string{"true"}, "timeout_seconds": 1e9}, "limit"},
		{"write_file", m{"id": id, "content": "x"}, "path"},
		{"write_file", m{"id": id, "path": "relative", "content": "x"}, "absolute"},
		{"write_file", m{"id": id, "path": "/x", "content": "x", "mode": "999"}, "mode"},
		{"write_file", m{"id": id, "path": "/x", "content": "%%", "base64": true}, "base64"},
		{"read_file", m{"id": id, "path": "/no/such/file"}, "no such file"},
		{"read_file", m{"id": id, "path": "/work"}, "directory"},
		{"list_files", m{"id": id, "path": "/work/bin"}, "not a directory"},
		{"read_file", m{"id": id, "path": "/work/fifo"}, "not a regular file"},
		{"write_file", m{"id": id, "path": "/work/fifo", "content": "x"}, "/work/fifo"},
		{"read_file", m{"id": id, "path": "/dev/zero"}, "not a regular file"},
		{"read_file", m{"id": id, "path": "/work/big"}, "larger than"},
		{"close_sandbox", m{"id": "no-such-sandbox"}, "no-such-sandbox"},
	} {
		callErr(t, s, c.tool, c.args, c.want)
	}
	if _, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: "no_such_tool"}); err == nil {
		t.Error("calling an unknown tool succeeded")
	}

	// The most sandboxes at once, and closing one.
	var second createOut
	callOK(t, s, "create_sandbox", m{"image": ref}, &second)
	callOK(t, s, "run_command", m{"id": second.ID, "command": []string{"cat", "/etc/passwd"}}, &ran)
	if !strings.Contains(ran.Stdout, "user:x:1000") {
		t.Errorf("the busybox sandbox's /etc/passwd: %+v", ran)
	}
	callErr(t, s, "create_sandbox", m{}, "--max-sandboxes")
	var closed closeOut
	callOK(t, s, "close_sandbox", m{"id": second.ID}, &closed)
	callErr(t, s, "run_command", m{"id": second.ID, "command": []string{"true"}}, "is closed")
	var open listSandboxesOut
	callOK(t, s, "list_sandboxes", m{}, &open)
	if len(open.Sandboxes) != 1 || open.Sandboxes[0].ID != id || !open.Sandboxes[0].Running {
		t.Errorf("list_sandboxes: %+v; want only %s, running", open, id)
	}
	// A new one takes the closed one's place.
	callOK(t, s, "create_sandbox", m{"image": ref}, &second)

	// The client goes: the server closes both sandboxes and exits.
	if err := s.Close(); err != nil {
		t.Errorf("cc mcp exited with %v after the client disconnected", err)
	}
	noSandboxLeft(t, cache)
}

// createOrMissing calls create_sandbox with args. As root it must
// succeed; unprivileged, the host may lack what the sandbox needs, and then
// the error must name it (missing, one of the strings in missing).
func createOrMissing(t *testing.T, s *mcp.ClientSession, args m, missing ...string) (createOut, bool) {
	t.Helper()
	res := call(t, s, "create_sandbox", args)
	if res.IsError {
		msg := text(res)
		named := slices.ContainsFunc(missing, func(w string) bool { return strings.Contains(msg, w) })
		if os.Geteuid() == 0 || !named {
			t.Fatalf("create_sandbox(%v): %s", args, msg)
		}
		t.Logf("this host cannot: %s", msg)
		return createOut{}, false
	}
	var out createOut
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out, true
}

// TestMCPLimitsAndSignal checks the server's limits, and that SIGTERM
// closes the sandboxes before the server exits.
func TestMCPLimitsAndSignal(t *testing.T) {
	leakcheck.Check(t)
	cache := t.TempDir()
	s, pid := startMCP(t, cache, "--timeout", "10m", "--pids", "100", "--memory", "256", "--cpus", "1")
	for _, c := range []struct {
		args m
		want string
	}{
		{m{"timeout_seconds": 3600}, "limit of 600"},
		{m{"pids_limit": 1000}, "limit of 100"},
		{m{"memory_mb": 512}, "limit of 256"},
		{m{"cpus": 2}, "limit of 1"},
	} {
		callErr(t, s, "create_sandbox", c.args, c.want)
	}
	// The server's limits apply to a sandbox that asks for none; without
	// cgroups to enforce them (unprivileged), the error says which.
	if created, ok := createOrMissing(t, s, m{}, "cgroup"); ok {
		var ran runOut
		callOK(t, s, "run_command", m{"id": created.ID, "command": []string{"true"}}, &ran)
	}
	if created, ok := createOrMissing(t, s, m{"memory_mb": 128, "timeout_seconds": 60, "env": []string{"A=1"}, "workdir": "/tmp"}, "cgroup"); ok {
		var ran runOut
		callOK(t, s, "run_command", m{"id": created.ID, "command": []string{"sh", "-c", "echo $A $(pwd)"}}, &ran)
		if ran.Stdout != "1 /tmp\n" {
			t.Errorf("a sandbox made with env and workdir: %+v", ran)
		}
	}

	if err := syscall.Kill(pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The server hangs up once it has the signal.
	for {
		if _, err := s.ListTools(context.Background(), nil); err != nil {
			break
		}
	}
	err := s.Close()
	if err == nil || !strings.Contains(err.Error(), "143") {
		t.Errorf("cc mcp after SIGTERM: %v; want exit status 143", err)
	}
	noSandboxLeft(t, cache)
}

// TestMCPNetwork checks that a server started with --allow-network gives
// a sandbox that asks for it a network device besides lo.
func TestMCPNetwork(t *testing.T) {
	leakcheck.Check(t)
	cache := t.TempDir()
	s, _ := startMCP(t, cache, "--allow-network")
	var plain createOut
	callOK(t, s, "create_sandbox", m{}, &plain)
	created, ok := createOrMissing(t, s, m{"network": true}, "/dev/net/tun")
	for _, c := range []struct {
		id   string
		want bool
	}{{plain.ID, false}, {created.ID, true}} {
		if c.id == "" {
			continue
		}
		var ran runOut
		callOK(t, s, "run_command", m{"id": c.id, "command": []string{"sh", "-c", "tail -n +3 /proc/net/dev | grep -v '^ *lo:' | wc -l"}}, &ran)
		if has := strings.TrimSpace(ran.Stdout) != "0"; has != c.want {
			t.Errorf("sandbox %s: a device besides lo: %v, want %v (%+v)", c.id, has, c.want, ran)
		}
	}
	var open listSandboxesOut
	callOK(t, s, "list_sandboxes", m{}, &open)
	if n := len(open.Sandboxes); ok && (n != 2 || open.Sandboxes[1].ID != created.ID || !open.Sandboxes[1].Network) {
		t.Errorf("list_sandboxes: %+v", open)
	}
	if err := s.Close(); err != nil {
		t.Errorf("cc mcp exited with %v after the client disconnected", err)
	}
	noSandboxLeft(t, cache)
}

// TestMCPFlags checks that bad server flags stop cc mcp at once.
func TestMCPFlags(t *testing.T) {
	leakcheck.Check(t)
	for _, args := range [][]string{
		{"mcp", "--max-sandboxes", "0"},
		{"mcp", "--command-timeout", "0s"},
		{"mcp", "--max-calls", "0"},
		{"mcp", "--max-input", "0"},
		{"mcp", "--cpus", "-1"},
		{"mcp", "--no-such-flag"},
		{"mcp", "extra"},
	} {
		if r := runCC(t, strings.NewReader(""), args...); r.code != exitOwn || r.stdout != "" || !strings.HasPrefix(r.stderr, "cc: ") {
			t.Errorf("cc %s: %s; want exit 125 and an error on stderr", strings.Join(args, " "), r)
		}
	}
}
