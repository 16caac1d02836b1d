package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// TestReadFileHostileFiles: where the host expects a file, the sandbox
// links in a device that never ends (/dev/zero) or a terminal's master
// that never answers (/dev/pts/ptmx). ReadFile of the first is refused as
// too large; ReadFile and WriteFile of the second wait, as they would in
// the sandbox, and end with an error once the sandbox is closed, leaving
// nothing behind: the host holds no descriptor of such a file, whose
// reads and writes would not end with the sandbox.
func TestReadFileHostileFiles(t *testing.T) {
	for _, m := range ioModes {
		t.Run(m.name, func(t *testing.T) {
			inst := newInstance(t, busyboxImage(t), m.opts...)
			run(t, inst, "ln -s /dev/zero /zero && ln -s /dev/pts/ptmx /ptmx")
			if data, err := inst.ReadFile("/zero"); err == nil {
				t.Errorf("ReadFile of a link to /dev/zero: %d bytes and no error", len(data))
			}
			if f, err := inst.Open("/zero"); err == nil {
				buf := make([]byte, 1<<20)
				if n, err := io.ReadFull(f, buf); err != nil || !bytes.Equal(buf[:n], make([]byte, len(buf))) {
					t.Errorf("Open and read of /dev/zero: %d bytes, %v", n, err)
				}
				f.Close()
			} else {
				t.Errorf("Open of a link to /dev/zero: %v", err)
			}
			ended := make(chan error, 2)
			go func() {
				_, err := inst.ReadFile("/ptmx")
				ended <- err
			}()
			go func() {
				ended <- inst.WriteFile("/ptmx", make([]byte, 2<<20), 0o644)
			}()
			select {
			case err := <-ended:
				t.Fatalf("a call on a terminal's master nobody serves returned before Close: %v", err)
			case <-time.After(time.Second):
			}
			if err := inst.Close(); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				select {
				case err := <-ended:
					if err == nil {
						t.Error("a call on a terminal's master returned no error once the sandbox closed")
					}
				case <-time.After(time.Minute):
					t.Fatal("a call on a terminal's master outlived the sandbox's Close by a minute")
				}
			}
		})
	}
}

// TestReadAllSparse: the room readAll makes before bytes come is bounded,
// whatever size the file claims: a sparse file of a terabyte, which the
// sandbox can make without disk, is not a terabyte's allocation.
func TestReadAllSparse(t *testing.T) {
	name := filepath.Join(t.TempDir(), "sparse")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(1 << 40); err != nil {
		t.Fatal(err)
	}
	g, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	data, err := readAll(io.LimitReader(g, 1<<20), 1<<40)
	if err != nil || len(data) != 1<<20 || cap(data) > readAhead+1 {
		t.Errorf("readAll of 1 MiB of a 1 TiB file: %d bytes (room for %d), %v", len(data), cap(data), err)
	}
}

// TestReadDirLargerThanOneAnswer: a directory the sandbox filled with more
// entries than one answer holds (ipc.MaxDirEntries) is read whole, sorted,
// by ReadDir and by an open directory's ReadDir(-1): the agent answers a
// batch at a time, holding no more than one, rather than reading the whole
// directory into its memory (outside the sandbox's limit where cgroup v1
// leaves the agent out of it).
func TestReadDirLargerThanOneAnswer(t *testing.T) {
	const n = ipc.MaxDirEntries + 1000
	for _, m := range ioModes {
		t.Run(m.name, func(t *testing.T) {
			inst := newInstance(t, busyboxImage(t), m.opts...)
			run(t, inst, fmt.Sprintf("mkdir /d && cd /d && seq -w %d | xargs touch", n))
			entries, err := inst.ReadDir("/d")
			if err != nil || len(entries) != n {
				t.Fatalf("ReadDir: %d entries, %v", len(entries), err)
			}
			if !slices.IsSortedFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) }) {
				t.Error("ReadDir's entries are not sorted")
			}
			f, err := inst.Open("/d")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			all, err := f.(fs.ReadDirFile).ReadDir(-1)
			if err != nil || len(all) != n {
				t.Errorf("ReadDir(-1) of the open directory: %d entries, %v", len(all), err)
			}
			if more, err := f.(fs.ReadDirFile).ReadDir(-1); len(more) != 0 || err != nil {
				t.Errorf("ReadDir(-1) at the end: %d entries, %v", len(more), err)
			}
		})
	}
}

// TestReadDirLyingAgent: an agent that answers every batch of an open
// directory in full (a compromised guest's, or a network helper's that
// lies) or with more entries than asked. ReadDir(-1) holds at most
// maxDirRead entries and fails with EFBIG, rather than ask without end;
// an answer of more than asked fails as malformed.
func TestReadDirLyingAgent(t *testing.T) {
	leakcheck.Check(t)
	var batches atomic.Int32
	full := make([]ipc.DirEntry, ipc.MaxDirEntries)
	for i := range full {
		full[i] = ipc.DirEntry{Name: fmt.Sprintf("e%d", i)}
	}
	mux := ipc.NewMux()
	ipc.Route(mux, ipc.MsgFileReadDir, func(_ *ipc.Request, m *ipc.ReadDirReq) (ipc.DirAns, error) {
		if m.N > 0 {
			return ipc.DirAns{Entries: full[:m.N+1]}, nil // one more than asked
		}
		if batches.Add(1) > 2*maxDirRead/ipc.MaxDirEntries {
			return ipc.DirAns{}, fmt.Errorf("the lying agent answered %d batches", batches.Load()-1)
		}
		return ipc.DirAns{Entries: full}, nil
	})
	sock := filepath.Join(t.TempDir(), "agent")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := ipc.NewServerListener(ln, mux)
	go srv.Serve()
	defer srv.Close()
	c, err := ipc.ConnectTo(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	inst := &Instance{agent: ipc.NewAgent(c)}
	f := &File{inst: inst, name: "/d", path: "/d", info: newFileInfo("/d", ipc.FileInfo{Name: "d", IsDir: true, Mode: fs.ModeDir | 0o755}, ipc.Stat{})}
	f.io = &agentFile{inst: inst, handle: 1}
	// The open directory's own reading: inst is no more than its agent.
	entries, err := f.io.ReadDir(f, -1)
	if !errors.Is(err, syscall.EFBIG) || entries != nil {
		t.Errorf("ReadDir(-1) of an agent that answers without end: %d entries, %v; want EFBIG", len(entries), err)
	}
	if got, most := batches.Load(), int32(maxDirRead/ipc.MaxDirEntries); got > most {
		t.Errorf("ReadDir(-1) asked for %d full batches; at most %d hold maxDirRead", got, most)
	}
	if entries, err := f.io.ReadDir(f, 10); !errors.Is(err, ipc.ErrMalformed) || entries != nil {
		t.Errorf("ReadDir(10) answered with 11 entries: %d entries, %v; want ErrMalformed", len(entries), err)
	}
}
