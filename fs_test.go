package sandbox

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

// fixture is the tree the file tests write into sandboxes.
var fixture = fstest.MapFS{
	"a.txt":           {Data: []byte("hello, sandbox\n"), Mode: 0o644},
	"dir/b.txt":       {Data: bytes.Repeat([]byte("0123456789"), 130), Mode: 0o600}, // past one read of fstest's small readers, few enough round trips for a VM under emulation
	"dir/sub/c.bin":   {Data: []byte{0, 1, 2, 3, 255}, Mode: 0o755},
	"dir/sub/empty":   {Data: nil, Mode: 0o644},
	"emptydir":        {Mode: fs.ModeDir | 0o755},
	"link":            {Data: []byte("a.txt"), Mode: fs.ModeSymlink | 0o777},
	"deep/x/y/z/file": {Data: []byte("deep"), Mode: 0o644},
}

// writeFixture writes the fixture tree under root in inst.
func writeFixture(t *testing.T, inst *Instance, root string) {
	t.Helper()
	for _, name := range slices.Sorted(mapKeys(fixture)) {
		f := fixture[name]
		p := path.Join(root, name)
		if err := inst.MkdirAll(path.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case f.Mode.IsDir():
			if err := inst.Mkdir(p, f.Mode.Perm()); err != nil {
				t.Fatal(err)
			}
		case f.Mode&fs.ModeSymlink != 0:
			if err := inst.Symlink(string(f.Data), p); err != nil {
				t.Fatal(err)
			}
		default:
			if err := inst.WriteFile(p, f.Data, f.Mode.Perm()); err != nil {
				t.Fatal(err)
			}
			if err := inst.Chmod(p, f.Mode.Perm()); err != nil { // past the umask
				t.Fatal(err)
			}
		}
	}
}

func mapKeys(m fstest.MapFS) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestFS runs testing/fstest.TestFS over a tree written into a sandbox, on
// the descriptor path and on the streamed path, and compares a walk of it
// with the same tree as an fstest.MapFS.
func TestFS(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, mode.opts...)
			writeFixture(t, inst, "/fixture")
			sub, err := fs.Sub(inst, "fixture")
			if err != nil {
				t.Fatal(err)
			}
			names := []string{"a.txt", "dir/b.txt", "dir/sub/c.bin", "dir/sub/empty", "emptydir", "link", "deep/x/y/z/file"}
			if err := fstest.TestFS(sub, names...); err != nil {
				t.Fatal(err)
			}
			// The same walk as the oracle.
			walk := func(fsys fs.FS) []string {
				var out []string
				fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
					if err != nil {
						t.Fatalf("walk %s: %v", p, err)
					}
					info, _ := d.Info()
					mode := info.Mode().String()
					if d.IsDir() {
						mode = "dir" // MapFS makes up modes for implied directories
					}
					out = append(out, p+" "+d.Type().String()+" "+mode)
					return nil
				})
				return out
			}
			got, want := walk(sub), walk(fixture)
			if !slices.Equal(got, want) {
				t.Errorf("walk differs:\n got %q\nwant %q", got, want)
			}
			// ReadFile through the FS matches for every file.
			for name, f := range fixture {
				if f.Mode.IsRegular() {
					b, err := fs.ReadFile(sub, name)
					if err != nil || !bytes.Equal(b, f.Data) {
						t.Errorf("ReadFile(%s) = %q, %v", name, b, err)
					}
				}
			}
		})
	}
}

func TestFileAPI(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			inst := hostInstance(t, mode.opts...)
			for _, tc := range fileCases {
				t.Run(tc.name, func(t *testing.T) { tc.fn(t, inst) })
			}
		})
	}
}

var fileCases = []struct {
	name string
	fn   func(*testing.T, *Instance)
}{
	{"Errors", testFileErrors},
	{"OpenFileFlags", testOpenFileFlags},
	{"SeekReadAtWriteAt", testSeekReadAtWriteAt},
	{"StatAndMetadata", testStatAndMetadata},
	{"RenameRemove", testRenameRemove},
	{"ReadDirChunks", testReadDirChunks},
	{"LargeFile", testLargeFile},
	{"EOF", testEOF},
	{"PathForms", testPathForms},
}

func testFileErrors(t *testing.T, inst *Instance) {
	check := func(err error, op, path string, target error) {
		t.Helper()
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Op != op || pe.Path != path || !errors.Is(err, target) {
			t.Errorf("got %v (%T), want *fs.PathError{%s %s} matching %v", err, err, op, path, target)
		}
	}
	_, err := inst.ReadFile("no/such/file")
	check(err, "open", "no/such/file", fs.ErrNotExist)
	_, err = inst.Stat("/missing")
	check(err, "stat", "/missing", fs.ErrNotExist)
	if err := inst.Mkdir("/exists", 0o755); err != nil {
		t.Fatal(err)
	}
	check(inst.Mkdir("/exists", 0o755), "mkdir", "/exists", fs.ErrExist)
	inst.WriteFile("/exists/f", nil, 0o644)
	err = inst.Remove("/exists")
	check(err, "remove", "/exists", syscall.ENOTEMPTY)
	_, err = inst.Open("a//b")
	check(err, "open", "a//b", fs.ErrInvalid)
	_, err = inst.Open("../etc")
	check(err, "open", "../etc", fs.ErrInvalid)
	_, err = inst.OpenFile("/exists", os.O_WRONLY, 0)
	check(err, "open", "/exists", syscall.EISDIR)
	if err := inst.WriteFile("/exists/ro", []byte("x"), 0o444); err != nil {
		t.Fatal(err)
	}
	_, err = inst.ReadDir("/exists/ro")
	check(err, "readdir", "/exists/ro", syscall.ENOTDIR)
	err = inst.Rename("/nope", "/nope2")
	var le *os.LinkError
	if !errors.As(err, &le) || le.Op != "rename" || le.Old != "/nope" || le.New != "/nope2" || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Rename of a missing file: %#v", err)
	}
	f, err := inst.Create("/exists/twice")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	check(f.Close(), "close", "/exists/twice", fs.ErrClosed)
	_, err = f.Write([]byte("x"))
	if !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
}

func testOpenFileFlags(t *testing.T, inst *Instance) {
	p := "/flags.txt"
	f, err := inst.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("abc"))
	f.Close()
	if _, err := inst.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640); !errors.Is(err, fs.ErrExist) {
		t.Errorf("O_EXCL on an existing file: %v", err)
	}
	f, err = inst.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("def"))
	f.Close()
	if b, _ := inst.ReadFile(p); string(b) != "abcdef" {
		t.Errorf("after O_APPEND: %q", b)
	}
	f, err = inst.OpenFile(p, os.O_TRUNC|os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("x"))
	f.Close()
	if b, _ := inst.ReadFile(p); string(b) != "x" {
		t.Errorf("after O_TRUNC: %q", b)
	}
	fi, err := inst.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("created mode: %v %v", fi, err)
	}
}

func testSeekReadAtWriteAt(t *testing.T, inst *Instance) {
	f, err := inst.Create("/rw")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("AB"), 3); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if n, err := f.ReadAt(buf, 2); err != nil || string(buf[:n]) != "2AB5" {
		t.Errorf("ReadAt: %q %v", buf[:n], err)
	}
	if n, err := f.ReadAt(buf, 8); n != 2 || err != io.EOF {
		t.Errorf("ReadAt past the end: %d %v, want 2 io.EOF", n, err)
	}
	if pos, err := f.Seek(-2, io.SeekEnd); err != nil || pos != 8 {
		t.Errorf("Seek: %d %v", pos, err)
	}
	if n, err := f.Read(buf); err != nil || string(buf[:n]) != "89" {
		t.Errorf("Read after Seek: %q %v", buf[:n], err)
	}
	if err := f.Truncate(4); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil || fi.Size() != 4 || fi.Name() != "rw" {
		t.Errorf("Stat after Truncate: %v %v", fi, err)
	}
	if f.Name() != "/rw" {
		t.Errorf("Name %q", f.Name())
	}
}

func testStatAndMetadata(t *testing.T, inst *Instance) {
	if err := inst.WriteFile("/meta", []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 891011000, time.UTC)
	if err := inst.Chtimes("/meta", time.Time{}, mtime); err != nil {
		t.Fatal(err)
	}
	if err := inst.Chmod("/meta", fs.ModeSetuid|0o751); err != nil {
		t.Fatal(err)
	}
	fi, err := inst.Stat("meta")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 5 || fi.Mode() != fs.ModeSetuid|0o751 || !fi.ModTime().Equal(mtime) || fi.Name() != "meta" {
		t.Errorf("Stat: %v mtime %v", fi, fi.ModTime())
	}
	st := fi.Sys().(*FileStat)
	if st.Uid != 0 || st.Gid != 0 || st.Nlink != 1 {
		t.Errorf("sandbox ids %d:%d nlink %d", st.Uid, st.Gid, st.Nlink)
	}
	// The same metadata through an opened file (a descriptor, where they pass).
	f, err := inst.Open("meta")
	if err != nil {
		t.Fatal(err)
	}
	ffi, err := f.Stat()
	f.Close()
	if err != nil || ffi.Mode() != fi.Mode() || !ffi.ModTime().Equal(mtime) || ffi.Sys().(*FileStat).Uid != 0 {
		t.Errorf("File.Stat: %v %v", ffi, err)
	}
	if err := inst.Symlink("meta", "/metalink"); err != nil {
		t.Fatal(err)
	}
	lfi, err := inst.Lstat("/metalink")
	if err != nil || lfi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Lstat: %v %v", lfi, err)
	}
	if target, err := inst.Readlink("/metalink"); err != nil || target != "meta" {
		t.Errorf("Readlink: %q %v", target, err)
	}
	if target, err := inst.ReadLink("metalink"); err != nil || target != "meta" {
		t.Errorf("ReadLink: %q %v", target, err)
	}
	if sfi, err := inst.Stat("/metalink"); err != nil || sfi.Mode() != fi.Mode() {
		t.Errorf("Stat through a symlink: %v %v", sfi, err)
	}
	if os.Geteuid() == 0 {
		if err := inst.Chown("/meta", 1000, 100); err != nil {
			t.Fatal(err)
		}
		fi, _ = inst.Stat("/meta")
		if st := fi.Sys().(*FileStat); st.Uid != 1000 || st.Gid != 100 {
			t.Errorf("after Chown: %d:%d", st.Uid, st.Gid)
		}
		if out := run(t, inst, "stat -c %u:%g /meta"); out != "1000:100\n" {
			t.Errorf("stat inside: %q", out)
		}
	}
}

func testRenameRemove(t *testing.T, inst *Instance) {
	inst.MkdirAll("/mv/a/b", 0o755)
	inst.WriteFile("/mv/a/b/f", []byte("f"), 0o644)
	if err := inst.Rename("/mv/a", "/mv/z"); err != nil {
		t.Fatal(err)
	}
	if b, err := inst.ReadFile("mv/z/b/f"); err != nil || string(b) != "f" {
		t.Errorf("after rename: %q %v", b, err)
	}
	if err := inst.RemoveAll("/mv"); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.Stat("/mv"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after RemoveAll: %v", err)
	}
	if err := inst.RemoveAll("/mv"); err != nil {
		t.Errorf("RemoveAll of a missing path: %v", err)
	}
	if err := inst.RemoveAll("/"); err == nil {
		t.Error("RemoveAll of / succeeded")
	}
}

func testReadDirChunks(t *testing.T, inst *Instance) {
	inst.MkdirAll("/many", 0o755)
	for i := range 25 {
		inst.WriteFile("/many/"+string(rune('a'+i)), nil, 0o644)
	}
	f, err := inst.Open("many")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := f.(fs.ReadDirFile)
	var names []string
	for {
		entries, err := d.ReadDir(10)
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == 0 {
			t.Fatal("ReadDir(10) returned nothing without io.EOF")
		}
	}
	if len(names) != 25 {
		t.Errorf("read %d entries in chunks, want 25", len(names))
	}
}

func testLargeFile(t *testing.T, inst *Instance) {
	data := make([]byte, 12<<20+7)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := inst.WriteFile("/large", data, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := inst.ReadFile("large")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("12 MB round trip: %d bytes, %v", len(got), err)
	}
	if out := run(t, inst, "wc -c < /large"); out != "12582919\n" {
		t.Errorf("size inside %q", out)
	}
}

func testEOF(t *testing.T, inst *Instance) {
	inst.WriteFile("/short", []byte("ab"), 0o644)
	f, err := inst.Open("short")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 10)
	if n, err := f.Read(buf); n != 2 || err != nil {
		t.Fatalf("first read %d %v", n, err)
	}
	if n, err := f.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("read at end of file = %d, %v; want 0, io.EOF", n, err)
	}
}

func testPathForms(t *testing.T, inst *Instance) {
	inst.WriteFile("forms", []byte("1"), 0o644) // relative: from the root
	for _, name := range []string{"forms", "/forms"} {
		if b, err := inst.ReadFile(name); err != nil || string(b) != "1" {
			t.Errorf("ReadFile(%q) = %q, %v", name, b, err)
		}
	}
	for _, bad := range []string{"./forms", "forms/", "a/../forms", ""} {
		if _, err := inst.Stat(bad); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Stat(%q): %v, want fs.ErrInvalid", bad, err)
		}
	}
	if _, err := inst.Stat("/"); err != nil {
		t.Errorf("Stat(/): %v", err)
	}
	if _, err := inst.Stat("."); err != nil {
		t.Errorf("Stat(.): %v", err)
	}
}
