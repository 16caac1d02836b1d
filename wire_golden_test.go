package sandbox

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/snapshot"
	"github.com/ccsandbox/sandbox/internal/testutil/wirefake"
)

// TestWireGolden drives the public package's calls, with fixed arguments,
// against a fake agent that records every request and answers with the
// golden answer of internal/ipc/testdata/wire.golden (internal/testutil/
// wirefake): each request must be byte for byte the golden one, and the
// public package must take each golden answer. The golden bytes were
// captured from main before the protocol got its types (and were the same
// at 4d903b9), so the wire has not changed since. The helper's own
// messages are internal/helper's TestWireGolden; the network helper's
// (remote-*) go between internal/helper's client and server.

// composedOnly are the golden messages the public package never sends
// (internal/ipc's golden test pins them).
var composedOnly = map[string]bool{
	"hello": true, "isrunning": true, "instance-new": true, "instance-id": true, "fs-open": true, "fs-create": true,
	"file-name": true, "cmd-new": true, "cmd-start": true, "cmd-free": true, "cmd-wait-keep": true,
	"listener-addr": true, "agent-snapshot": true, "error": true,
	"fs-writestream": true, // its stream is exercised by real sandboxes (TestWriteFileStreamed)
	"fs-readstream":  true, // likewise (TestReadFileStreamed)
}

// fakeRunner is a runner whose agent is the fake.
type fakeRunner struct {
	client *ipc.Client
	done   chan struct{}
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
func (f *fakeRunner) Snapshot(context.Context, *image.Store, []string, snapshot.Parent, *slog.Logger) (*snapshot.Info, error) {
	return nil, nil
}

func TestWireGolden(t *testing.T) {
	rec, client := wirefake.Start(t)
	dir := t.TempDir()
	fr := &fakeRunner{client: client, done: make(chan struct{})}
	mk := func(fdOK bool) *Instance {
		return &Instance{id: "fake", runner: fr, agent: ipc.NewAgent(client), fdOK: fdOK, defaults: runConfig{Env: []string{"PATH=/bin"}}}
	}
	s, d := mk(false), mk(true)
	step := rec.Step
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
		rec.Label("cmd-signal")
		c.Process.Signal(syscall.SIGTERM)
		rec.Label("cmd-kill-tree")
		c.kill(syscall.SIGKILL, true)
		rec.Label("cmd-wait")
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
		rec.Label("cmd-setconsolesize")
		c.SetConsoleSize(30, 100)
		rec.Label("cmd-wait-tty")
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
		rec.Label("cmd-wait-fd")
		c.Wait()
	})

	step("listen", func() {
		l, err := s.Listen("tcp", "127.0.0.1:8080")
		if err != nil {
			t.Fatal(err)
		}
		rec.Label("accept")
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
		rec.Label("listener-close")
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
		e := &Instance{id: "fake", runner: lr, agent: ipc.NewAgent(client), fdOK: true}
		if err := e.SetNetworkEnabled(true); err != nil {
			t.Fatal(err)
		}
		rec.Label("setnetwork-down")
		if err := e.SetNetworkEnabled(false); err != nil {
			t.Fatal(err)
		}
	})
	step("setnetwork-tap", func() {
		e := &Instance{id: "fake", runner: fr, agent: ipc.NewAgent(client), fdOK: true}
		e.SetNetworkEnabled(true)
	})

	rec.Check(t, func(label string) bool {
		return !strings.HasPrefix(label, "helper-") && !strings.HasPrefix(label, "remote-") && !composedOnly[label]
	})
}

// linkRunner hands over a device for egress.
type linkRunner struct {
	*fakeRunner
	link *os.File
}

func (l *linkRunner) OpenLink(string) (*os.File, error) { return l.link, nil }
