package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/testutil/wiregolden"
	"golang.org/x/sys/unix"
)

// testAgent returns an agent whose root is a new directory on the host
// (for the file calls only: its commands would run on the host).
func testAgent(t *testing.T) (*agent, string) {
	t.Helper()
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	a := &agent{cfg: &Config{}, log: slog.New(slog.DiscardHandler), mux: ipc.NewMux(), handles: newHandleTable(),
		root: &root{fd: fd}, tun: -1}
	a.register()
	return a, dir
}

// TestAgentServesTable: the agent serves every message the table names it
// for, and no other.
func TestAgentServesTable(t *testing.T) {
	a, _ := testAgent(t)
	for _, d := range ipc.Messages() {
		_, err := a.mux.ServeCall(context.Background(), &ipc.Request{Type: d.Type, Payload: []byte{0xff}})
		unknown := err != nil && strings.Contains(err.Error(), "unknown message type")
		if serves := d.Peer&ipc.PeerAgent != 0; serves == unknown {
			t.Errorf("%s: the table says the agent serves it: %v; the agent answers %v", d.Name, serves, err)
		}
	}
}

// TestAgentAnswersGolden replays the golden requests of the file system and
// open-file messages through the agent's dispatcher, in a root laid out as
// the golden requests expect, and checks that each answer is one body of
// the table's answer type, with nothing left over, that says what the
// files are.
func TestAgentAnswersGolden(t *testing.T) {
	a, dir := testAgent(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "etc"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0::/:/bin/sh\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "etc/hostname"), []byte("h\n"), 0o644))
	must(os.Symlink("passwd", filepath.Join(dir, "etc/l")))
	must(os.Symlink("etc/passwd", filepath.Join(dir, "l")))
	for _, f := range []string{"r", "c", "o", "t", "a", "f"} {
		must(os.WriteFile(filepath.Join(dir, f), []byte("hello"), 0o644))
	}
	must(os.MkdirAll(filepath.Join(dir, "ra/x"), 0o755))
	msgs, err := wiregolden.Read()
	must(err)
	checks := map[string]func(t *testing.T, m ipc.Msg){
		"stat": func(t *testing.T, m ipc.Msg) {
			if s := m.(*ipc.StatAns); s.Info.Name != "passwd" || s.Info.Size != 22 || s.Info.Mode != 0o644 {
				t.Errorf("stat /etc/passwd: %+v", s.Info)
			}
		},
		"lstat": func(t *testing.T, m ipc.Msg) {
			if s := m.(*ipc.StatAns); !s.Info.IsSymlink || s.Info.Name != "l" {
				t.Errorf("lstat /etc/l: %+v", s.Info)
			}
		},
		"readfile": func(t *testing.T, m ipc.Msg) {
			if b := m.(*ipc.BytesAns); string(b.Data) != "h\n" {
				t.Errorf("readfile: %q", b.Data)
			}
		},
		"readdir": func(t *testing.T, m ipc.Msg) {
			var names []string
			for _, e := range m.(*ipc.DirAns).Entries {
				names = append(names, e.Name)
			}
			if strings.Join(names, " ") != "hostname l passwd" {
				t.Errorf("readdir /etc: %v", names)
			}
		},
		"readlink": func(t *testing.T, m ipc.Msg) {
			if s := m.(*ipc.StringAns); s.Value != "etc/passwd" {
				t.Errorf("readlink /l: %q", s.Value)
			}
		},
		"openfile": func(t *testing.T, m ipc.Msg) {
			if o := m.(*ipc.OpenAns); o.Handle != 7 || o.Info.Name != "f" {
				t.Errorf("open /f: %+v", o)
			}
		},
		"file-write":   func(t *testing.T, m ipc.Msg) { wantN(t, m, 3) },
		"file-writeat": func(t *testing.T, m ipc.Msg) { wantN(t, m, 2) },
		"file-seek": func(t *testing.T, m ipc.Msg) {
			if s := m.(*ipc.SeekAns); s.Pos != 6 {
				t.Errorf("seek +3 after 3 written: %d", s.Pos)
			}
		},
	}
	served := 0
	for _, g := range msgs {
		if g.Type>>8 != 2 && g.Type>>8 != 3 || g.Type == ipc.MsgFsSnapshot || g.Type == ipc.MsgFsWriteStream || g.Type == ipc.MsgFsReadStream {
			continue
		}
		switch g.Label {
		case "openfile", "openfile-fd", "fs-open", "fs-create":
			a.handles.next = 7 // the golden handles
		case "open-dir":
			a.handles.next = 9
		}
		resp, err := a.mux.ServeCall(context.Background(), &ipc.Request{Type: g.Type, Payload: g.Req})
		if err != nil {
			// An empty file read at its end, and the write's file
			// truncated: the only refusals the layout allows.
			if (g.Label == "file-read" || g.Label == "file-readat") && errors.Is(err, io.EOF) {
				continue
			}
			t.Errorf("%s: %v", g.Label, err)
			continue
		}
		for _, f := range resp.Files {
			f.Close()
		}
		served++
		if len(resp.Payload) == 0 || resp.Payload[0] != ipc.ErrCodeOK {
			t.Errorf("%s: answer %x lacks the success byte", g.Label, resp.Payload)
			continue
		}
		m := ipc.Describe(g.Type).Answer()
		dec := ipc.NewDecoder(resp.Payload[1:])
		if err := m.Decode(dec); err != nil || dec.Remaining() != 0 {
			t.Errorf("%s: answer %x: %v, %d bytes left over", g.Label, resp.Payload, err, dec.Remaining())
			continue
		}
		if check := checks[g.Label]; check != nil {
			check(t, m)
		}
	}
	if served < 30 {
		t.Errorf("only %d golden requests served", served)
	}
}

func wantN(t *testing.T, m ipc.Msg, n uint32) {
	t.Helper()
	if c := m.(*ipc.CountAns); c.N != n {
		t.Errorf("wrote %d, want %d", c.N, n)
	}
}

// TestReadDirBounded: the agent answers a directory a batch of at most
// ipc.MaxDirEntries at a time, and holds no more: a whole-directory read
// of a bigger one is refused (EFBIG: the client then reads in batches),
// and an open directory's read of "all the rest" gives one batch.
func TestReadDirBounded(t *testing.T) {
	a, dir := testAgent(t)
	d := filepath.Join(dir, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range ipc.MaxDirEntries + 1 {
		f, err := os.Create(filepath.Join(d, strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if entries, err := a.root.readDir("/d"); !errors.Is(err, syscall.EFBIG) {
		t.Errorf("reading a directory of %d entries whole: %d entries, %v", ipc.MaxDirEntries+1, len(entries), err)
	}
	f, err := a.root.open("/d", os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := a.handles.add(f)
	defer func() {
		if f, err := take[*os.File](a.handles, h); err == nil {
			f.Close()
		}
	}()
	for _, want := range []int{ipc.MaxDirEntries, 1} {
		var req ipc.Encoder
		(&ipc.ReadDirReq{Handle: h, N: -1}).Encode(&req)
		ans, err := a.mux.ServeCall(context.Background(), &ipc.Request{Type: ipc.MsgFileReadDir, Payload: req.Bytes()})
		if err != nil {
			t.Fatal(err)
		}
		if len(ans.Payload) == 0 || ans.Payload[0] != ipc.ErrCodeOK {
			t.Fatalf("a batch of the open directory: answer %.40x", ans.Payload)
		}
		var d ipc.DirAns
		if err := d.Decode(ipc.NewDecoder(ans.Payload[1:])); err != nil || len(d.Entries) != want {
			t.Errorf("a batch of the open directory: %d entries, want %d (%v)", len(d.Entries), want, err)
		}
	}
}
