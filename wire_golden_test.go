package sandbox

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestWireGolden drives the public package's calls, with fixed arguments,
// against a fake agent (and helper) that records every request and answers
// with the golden answer of internal/ipc/testdata/wire.golden: each request
// must be byte for byte the golden one, and the public package must take
// each golden answer. The golden bytes were captured from main before the
// protocol got its types (and were the same at 4d903b9), so the wire has not
// changed since.

// goldenMsg is one line of wire.golden.
type goldenMsg struct {
	label string
	typ   uint16
	files int
	req   []byte
	ans   []byte
}

// readWireGolden reads internal/ipc/testdata/wire.golden.
func readWireGolden(t *testing.T) ([]goldenMsg, map[string]goldenMsg) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("internal", "ipc", "testdata", "wire.golden"))
	if err != nil {
		t.Fatal(err)
	}
	var list []goldenMsg
	byLabel := map[string]goldenMsg{}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var g goldenMsg
		var typ, req, ans string
		if _, err := fmt.Sscanf(line, "%s %s files=%d req=%s ans=%s", &g.label, &typ, &g.files, &req, &ans); err != nil {
			// An empty payload leaves a field empty.
			f := strings.Fields(line)
			if len(f) < 3 {
				t.Fatalf("wire.golden: bad line %q", line)
			}
			g.label, typ = f[0], f[1]
			fmt.Sscanf(f[2], "files=%d", &g.files)
			for _, kv := range f[3:] {
				if v, ok := strings.CutPrefix(kv, "req="); ok {
					req = v
				} else if v, ok := strings.CutPrefix(kv, "ans="); ok {
					ans = v
				}
			}
		}
		var n uint64
		if _, err := fmt.Sscanf(typ, "0x%x", &n); err != nil {
			t.Fatalf("wire.golden: bad type in %q", line)
		}
		g.typ = uint16(n)
		if g.req, err = hex.DecodeString(req); err != nil {
			t.Fatalf("wire.golden: %q: %v", line, err)
		}
		if g.ans, err = hex.DecodeString(ans); err != nil {
			t.Fatalf("wire.golden: %q: %v", line, err)
		}
		list = append(list, g)
		byLabel[g.label] = g
	}
	return list, byLabel
}

// wireRecord is one request the fake agent saw.
type wireRecord struct {
	label string
	typ   uint16
	files int
	req   []byte
}

// wireRecorder is the fake agent.
type wireRecorder struct {
	golden map[string]goldenMsg
	waitc  chan struct{} // closed when MsgInstanceWait arrives

	mu    sync.Mutex
	label string         // guarded by mu: the step running
	n     map[string]int // guarded by mu: requests per step
	recs  []wireRecord   // guarded by mu
}

func (r *wireRecorder) setLabel(l string) {
	r.mu.Lock()
	r.label = l
	r.mu.Unlock()
}

// answer returns the golden answer to the request labelled label.
func (r *wireRecorder) answer(label string, req *ipc.Request) (*ipc.Response, error) {
	if req.Type == ipc.MsgInstanceWait {
		close(r.waitc)
		<-req.Context().Done()
		return nil, req.Context().Err()
	}
	g, ok := r.golden[label]
	if !ok {
		return nil, fmt.Errorf("no golden answer for %s", label)
	}
	resp := &ipc.Response{Payload: g.ans}
	wantFD := len(req.Payload) > 0 && req.Payload[len(req.Payload)-1] == 1
	switch req.Type {
	case ipc.MsgCmdAttach, ipc.MsgListenerAccept:
		resp.Hijack = func(c net.Conn) { c.Close() }
	case ipc.MsgNetDial, ipc.MsgNetListenPacket:
		if !wantFD {
			resp.Hijack = func(c net.Conn) { c.Close() }
		}
	}
	return resp, nil
}

func (r *wireRecorder) ServeCall(ctx context.Context, req *ipc.Request) (*ipc.Response, error) {
	for _, f := range req.Files {
		f.Close()
	}
	r.mu.Lock()
	label := r.label
	r.n[label]++
	if r.n[label] > 1 {
		label = fmt.Sprintf("%s.%d", label, r.n[label])
	}
	r.recs = append(r.recs, wireRecord{label: label, typ: req.Type, files: len(req.Files), req: bytes.Clone(req.Payload)})
	r.mu.Unlock()
	return r.answer(label, req)
}

// fakeRunner is a runner whose agent is the recorder.
type fakeRunner struct {
	client *ipc.Client
	done   chan struct{}
	link   *os.File
}

func (f *fakeRunner) ID() string                        { return "fake" }
func (f *fakeRunner) Client() *ipc.Client               { return f.client }
func (f *fakeRunner) PassesFDs() bool                   { return true }
func (f *fakeRunner) Done() <-chan struct{}             { return f.done }
func (f *fakeRunner) Err() error                        { return nil }
func (f *fakeRunner) Close() error                      { return nil }
func (f *fakeRunner) SetTimeout(time.Duration) error    { return nil }
func (f *fakeRunner) Pid() int                          { return 1 }
func (f *fakeRunner) OOMKills() int                     { return 0 }
func (f *fakeRunner) OpenLink(string) (*os.File, error) { return nil, hv.ErrLinkViaAgent }

// composedOnly are the golden messages the public package never sends
// (internal/ipc's golden test pins them).
var composedOnly = map[string]bool{
	"hello": true, "isrunning": true, "instance-new": true, "instance-id": true, "fs-open": true, "fs-create": true,
	"file-name": true, "cmd-new": true, "cmd-start": true, "cmd-free": true, "cmd-wait-keep": true,
	"listener-addr": true, "agent-snapshot": true, "error": true,
}

func TestWireGolden(t *testing.T) {
	list, golden := readWireGolden(t)
	rec := &wireRecorder{golden: golden, n: map[string]int{}, waitc: make(chan struct{})}
	dir := t.TempDir()
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := ipc.NewServerListener(ln, rec)
	go srv.Serve()
	defer srv.Close()
	client, err := ipc.Connect(context.Background(), func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	fr := &fakeRunner{client: client, done: make(chan struct{})}
	mk := func(fdOK bool) *Instance {
		return &Instance{id: "fake", eng: fr, client: client, fdOK: fdOK, defaults: runConfig{Env: []string{"PATH=/bin"}}}
	}
	s, d := mk(false), mk(true)
	step := func(label string, fn func()) {
		rec.setLabel(label)
		fn()
	}
	step("stat", func() { s.Stat("/etc/passwd") })
	step("lstat", func() { s.Lstat("etc/l") })
	step("readfile", func() { s.ReadFile("etc/hostname") })
	step("readdir", func() { s.ReadDir("etc") })
	step("readlink", func() { s.ReadLink("l") })
	step("writefile", func() { s.WriteFile("/w", []byte("hello"), 0o640) })
	step("mkdir", func() { s.Mkdir("/d", 0o750) })
	step("mkdirall", func() { s.MkdirAll("d/e/f", 0o700) })
	step("remove", func() { s.Remove("/r") })
	step("removeall", func() { s.RemoveAll("/ra") })
	step("chmod", func() { s.Chmod("/c", 0o4755|fs.ModeSetuid) })
	step("chown", func() { s.Chown("/o", 1000, 1001) })
	step("lchown", func() { s.Lchown("/o", -1, 5) })
	step("chtimes", func() { s.Chtimes("/t", time.Unix(1, 2), time.Time{}) })
	step("chtimes-m", func() { s.Chtimes("/t", time.Time{}, time.Unix(3, 4)) })
	step("rename", func() { s.Rename("/a", "b") })
	step("symlink", func() { s.Symlink("../target", "/s") })
	var f *File
	step("openfile", func() { f, _ = s.OpenFile("/f", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600) })
	buf := make([]byte, 10)
	step("file-read", func() { f.Read(buf) })
	step("file-readat", func() { f.ReadAt(buf[:4], 100) })
	step("file-write", func() { f.Write([]byte("abc")) })
	step("file-writeat", func() { f.WriteAt([]byte("xy"), 5) })
	step("file-seek", func() { f.Seek(3, 1) })
	step("file-stat", func() { f.Stat() })
	step("file-sync", func() { f.Sync() })
	step("file-truncate", func() { f.Truncate(9) })
	step("file-close", func() { f.Close() })
	var df fs.File
	step("open-dir", func() { df, _ = s.Open("etc") })
	step("file-readdir", func() { df.(*File).ReadDir(5) })
	step("file-readdir-all", func() { df.(*File).ReadDir(-1) })
	step("openfile-fd", func() { d.OpenFile("/f", os.O_RDONLY, 0) })

	step("cmd-spawn-streamed", func() {
		c := s.Command("sh", "-c", "echo hi")
		c.Env = []string{"A=b"}
		c.Dir = "/tmp"
		c.User = "1000:1000"
		c.Stdout = new(bytes.Buffer)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		rec.setLabel("cmd-signal")
		c.Process.Signal(syscall.SIGTERM)
		rec.setLabel("cmd-kill-tree")
		c.kill(syscall.SIGKILL, true)
		rec.setLabel("cmd-wait")
		c.Wait()
	})
	step("cmd-spawn-tty", func() {
		c := s.Command("sh")
		c.Tty = true
		c.SetConsoleSize(24, 80)
		c.Stdout = new(bytes.Buffer)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		rec.setLabel("cmd-setconsolesize")
		c.SetConsoleSize(30, 100)
		rec.setLabel("cmd-wait-tty")
		c.Wait()
	})
	step("cmd-run", func() {
		tf, err := os.CreateTemp(dir, "out")
		if err != nil {
			t.Fatal(err)
		}
		defer tf.Close()
		c := d.Command("true")
		c.Stdout, c.Stderr = tf, tf
		c.Run()
	})
	step("cmd-run-null", func() { d.Command("true").Run() })
	step("cmd-spawn-fd", func() {
		c := d.Command("sleep", "1")
		c.Start()
		rec.setLabel("cmd-wait-fd")
		c.Wait()
	})

	step("listen", func() {
		l, err := s.Listen("tcp", "127.0.0.1:8080")
		if err != nil {
			t.Fatal(err)
		}
		rec.setLabel("accept")
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
		rec.setLabel("listener-close")
		l.Close()
	})
	step("listen-unix", func() { s.Listen("unix", "/run/s.sock") })
	step("listen-fd", func() { d.Listen("tcp", ":0") })
	step("dial", func() {
		if c, err := s.Dial("tcp", "127.0.0.1:80"); err == nil {
			c.Close()
		}
	})
	step("dial-fd", func() { d.Dial("udp", "10.0.0.1:53") })
	step("listenpacket", func() {
		if c, err := s.ListenPacket("udp", "127.0.0.1:53"); err == nil {
			c.Close()
		}
	})
	step("listenpacket-fd", func() { d.ListenPacket("unixgram", "/run/g") })

	// Egress through a device the runner hands over.
	step("setnetwork-up", func() {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(fds[1])
		lr := &linkRunner{fakeRunner: fr, link: os.NewFile(uintptr(fds[0]), "link")}
		e := &Instance{id: "fake", eng: lr, client: client, fdOK: true}
		if err := e.SetNetworkEnabled(true); err != nil {
			t.Fatal(err)
		}
		rec.setLabel("setnetwork-down")
		if err := e.SetNetworkEnabled(false); err != nil {
			t.Fatal(err)
		}
	})
	step("setnetwork-tap", func() {
		e := &Instance{id: "fake", eng: fr, client: client, fdOK: true}
		e.SetNetworkEnabled(true)
	})

	// The helper's own messages.
	r := &remoteRunner{helper: client, agent: client, done: make(chan struct{})}
	step("helper-openlink", func() { r.OpenLink("eth0") })
	step("helper-stats", func() { r.OOMKills() })
	step("helper-settimeout", func() { r.SetTimeout(1500 * time.Millisecond) })
	step("helper-snapshot", func() {
		h := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
		r.snapshot(context.Background(), "/cache", []string{"/tmp/**", "*.log"},
			snapshot.Parent{Key: "pk", Layers: []v1.Hash{h}, Host: "", Config: []byte(`{"a":1}`)})
	})
	step("helper-wait", func() {
		ctx, cancel := context.WithCancel(context.Background())
		r.waitStop = cancel
		go r.wait(ctx)
		<-rec.waitc
	})
	step("helper-close", func() { r.Close() })

	rec.mu.Lock()
	defer rec.mu.Unlock()
	seen := map[string]bool{}
	for _, x := range rec.recs {
		seen[x.label] = true
		g, ok := golden[x.label]
		switch {
		case !ok:
			t.Errorf("%s: message 0x%04x %x has no golden", x.label, x.typ, x.req)
		case g.typ != x.typ || g.files != x.files || !bytes.Equal(g.req, x.req):
			t.Errorf("%s: sent 0x%04x with %d files:\n  %x\nwant 0x%04x with %d files:\n  %x", x.label, x.typ, x.files, x.req, g.typ, g.files, g.req)
		}
	}
	for _, g := range list {
		if !seen[g.label] && !composedOnly[g.label] {
			t.Errorf("%s: golden message 0x%04x was not sent", g.label, g.typ)
		}
	}
}

// linkRunner hands over a device for egress.
type linkRunner struct {
	*fakeRunner
	link *os.File
}

func (l *linkRunner) OpenLink(string) (*os.File, error) { return l.link, nil }
