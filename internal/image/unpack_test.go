//go:build linux

package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/layertar"
	"golang.org/x/sys/unix"
)

// deep is a name of some 4 KB below top: 19 directories of 200 bytes.
func deep(top string) string {
	return top + strings.Repeat("/"+strings.Repeat("x", 200), 19) + "/f"
}

func TestUnpackHostile(t *testing.T) {
	check(t)
	truncated := makeTar(t, fileE("big", strings.Repeat("x", 4096)))
	truncated = truncated[:512+100] // the header and 100 of its 4096 bytes
	cases := []struct {
		name    string
		tar     []byte
		limits  Limits
		want    error  // errors.Is
		entry   string // the entry the error must name
		because string // a fragment of the message
	}{
		{"dotdot", makeTar(t, fileE("../evil", "x")), Limits{}, ErrUnsafeEntry, "../evil", ".."},
		{"dotdot inside", makeTar(t, fileE("a/../../evil", "x")), Limits{}, ErrUnsafeEntry, "a/../../evil", ".."},
		{"dotdot harmless", makeTar(t, fileE("a/../b", "x")), Limits{}, ErrUnsafeEntry, "a/../b", ".."},
		{"absolute", makeTar(t, fileE("/etc/evil", "x")), Limits{}, ErrUnsafeEntry, "/etc/evil", "absolute"},
		{"write through symlink out", makeTar(t, linkE("l", "../.."), fileE("l/evil", "x")), Limits{}, ErrUnsafeEntry, "l/evil", "symlink"},
		{"write through absolute symlink", makeTar(t, linkE("etc", "/etc"), fileE("etc/evil", "x")), Limits{}, ErrUnsafeEntry, "etc/evil", "symlink"},
		{"write through symlink in", makeTar(t, dirE("d/", 0o755), linkE("l", "d"), fileE("l/f", "x")), Limits{}, ErrUnsafeEntry, "l/f", "symlink"},
		{"mkdir through symlink", makeTar(t, linkE("l", "/tmp"), dirE("l/x/", 0o755)), Limits{}, ErrUnsafeEntry, "l/x/", "symlink"},
		{"hard link outside", makeTar(t, hardE("h", "../../etc/passwd")), Limits{}, ErrUnsafeEntry, "h", "outside"},
		{"hard link absolute", makeTar(t, hardE("h", "/etc/passwd")), Limits{}, ErrUnsafeEntry, "h", "outside"},
		{"hard link to missing", makeTar(t, hardE("h", "etc/passwd")), Limits{}, ErrUnsafeEntry, "h", "not an earlier file"},
		{"hard link via symlink", makeTar(t, linkE("l", "/etc"), hardE("h", "l/passwd")), Limits{}, ErrUnsafeEntry, "h", "not an earlier file"},
		{"hard link to dir", makeTar(t, dirE("d/", 0o755), hardE("h", "d")), Limits{}, ErrUnsafeEntry, "h", "not an earlier file"},
		{"file then dir", makeTar(t, fileE("a", "x"), dirE("a/", 0o755)), Limits{}, ErrUnsafeEntry, "a/", "changes type"},
		{"dir then file", makeTar(t, dirE("a/", 0o755), fileE("a", "x")), Limits{}, ErrUnsafeEntry, "a", "changes type"},
		{"file then symlink", makeTar(t, fileE("a", "x"), linkE("a", "/etc/passwd")), Limits{}, ErrUnsafeEntry, "a", "changes type"},
		{"below a file", makeTar(t, fileE("a", "x"), fileE("a/b", "y")), Limits{}, ErrUnsafeEntry, "a/b", "regular file"},
		{"duplicate file", makeTar(t, fileE("a", "x"), fileE("a", "y")), Limits{}, ErrUnsafeEntry, "a", "duplicate"},
		{"duplicate via ./", makeTar(t, fileE("a", "x"), fileE("./a", "y")), Limits{}, ErrUnsafeEntry, "./a", "duplicate"},
		{"duplicate whiteout", makeTar(t, fileE(".wh.a", ""), fileE(".wh.a", "")), Limits{}, ErrUnsafeEntry, ".wh.a", "duplicate"},
		{"whiteout of dotdot", makeTar(t, fileE("d/.wh...", "")), Limits{}, ErrInvalidEntry, "d/.wh...", "whiteout"},
		{"size beyond archive", truncated, Limits{}, ErrInvalidEntry, "big", "archive ends"},
		{"too large", makeTar(t, fileE("a", strings.Repeat("x", 8192))), Limits{MaxBytes: 4096}, ErrTooLarge, "a", "larger than 4096"},
		{"too many entries", makeTar(t, fileE("a", "x"), fileE("b", "x"), fileE("c", "x")), Limits{MaxEntries: 2}, ErrTooLarge, "c", "more than 2 entries"},
		// Each deep name implies 20 parents, some 46 KB of names kept.
		{"names too long", makeTar(t, fileE(deep("p1"), "x"), fileE(deep("p2"), "x")), Limits{MaxNameBytes: 64 << 10}, ErrTooLarge, deep("p2"), "names"},
		{"empty name", makeTar(t, tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "", ModTime: epoch}}), Limits{}, ErrInvalidEntry, "", "empty"},
		{"empty symlink", makeTar(t, linkE("l", "")), Limits{}, ErrInvalidEntry, "l", "empty target"},
		{"root not a dir", makeTar(t, fileE(".", "")), Limits{}, ErrInvalidEntry, ".", "root"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			layer, around := layerDirs(t)
			_, err := Unpack(context.Background(), bytes.NewReader(c.tar), layer, UnpackOptions{IDs: idmap.Current(), Limits: c.limits})
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			var pe *fs.PathError
			if !errors.As(err, &pe) || pe.Path != c.entry {
				t.Errorf("err = %v, want a *fs.PathError naming %q", err, c.entry)
			}
			if !strings.Contains(err.Error(), c.because) {
				t.Errorf("err = %v, want it to say %q", err, c.because)
			}
			if extra := outside(t, around); len(extra) > 0 {
				t.Errorf("written outside the layer: %v", extra)
			}
		})
	}
}

func TestUnpackBenign(t *testing.T) {
	check(t)
	// What real layers do and must keep working: "./" prefixes, the root
	// entry, a directory listed twice, implicit parents, a whiteout and the
	// entry it shadows in the same layer.
	data := makeTar(t,
		dirE("./", 0o755),
		dirE("./etc/", 0o755),
		fileE("./etc/hosts", "127.0.0.1 localhost\n"),
		dirE("etc/", 0o700),
		fileE("usr/lib/deep/file", "implicit parents"),
		fileE(".wh.old", ""),
		fileE("old", "new content"),
		dirE("gone/", 0o755),
		fileE(".wh.gone", ""),
		fileE(".wh..wh.plnk", ""),
	)
	layer, around := layerDirs(t)
	st, err := Unpack(context.Background(), bytes.NewReader(data), layer, UnpackOptions{IDs: idmap.Current()})
	if err != nil {
		t.Fatal(err)
	}
	if st.Skipped != 1 {
		t.Errorf("skipped %d entries, want 1 (the AUFS metadata)", st.Skipped)
	}
	if b, err := os.ReadFile(filepath.Join(layer, "old")); err != nil || string(b) != "new content" {
		t.Errorf("old = %q, %v", b, err)
	}
	fi, err := os.Stat(filepath.Join(layer, "etc"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("etc: %v %v, want mode 0700 from its second entry", fi, err)
	}
	if v := getXattr(t, filepath.Join(layer, "gone"), layertar.XattrOpaque); v != "y" {
		t.Errorf("gone/ made and whited out in one layer: opaque = %q, want y", v)
	}
	if fi, err := os.Stat(filepath.Join(layer, "usr/lib/deep")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("implicit parent: %v %v", fi, err)
	}
	if extra := outside(t, around); len(extra) > 0 {
		t.Errorf("written outside the layer: %v", extra)
	}
}

func TestUnpackFaithful(t *testing.T) {
	check(t)
	if os.Geteuid() != 0 {
		t.Skip("ownership mapping needs root; TestUnpackUnprivileged checks what this user's mode keeps")
	}
	ids := idmap.Current()
	mtime := time.Date(2023, 5, 6, 7, 8, 9, 123456789, time.UTC)
	hdr := func(h tar.Header) tarEntry {
		h.ModTime = mtime
		h.Format = tar.FormatPAX
		return tarEntry{hdr: h}
	}
	entries := []tarEntry{
		hdr(tar.Header{Typeflag: tar.TypeDir, Name: "home/", Mode: 0o755}),
		hdr(tar.Header{Typeflag: tar.TypeDir, Name: "home/user/", Mode: 0o750, Uid: 1000, Gid: 1000}),
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "home/user/notes", Mode: 0o600, Uid: 1000, Gid: 100, Size: 5, ModTime: mtime, Format: tar.FormatPAX,
			PAXRecords: map[string]string{"SCHILY.xattr.user.comment": "hello", "SCHILY.xattr.user.overlay.redirect": "/evil", "SCHILY.xattr.trusted.test": "t"}}, data: "notes"},
		hdr(tar.Header{Typeflag: tar.TypeReg, Name: "bin/su", Mode: 0o4755}),
		hdr(tar.Header{Typeflag: tar.TypeReg, Name: "bin/wall", Mode: 0o2755, Gid: 5}),
		hdr(tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777}),
		hdr(tar.Header{Typeflag: tar.TypeSymlink, Name: "home/user/link", Linkname: "notes", Uid: 1000, Gid: 1000}),
		hdr(tar.Header{Typeflag: tar.TypeLink, Name: "bin/su2", Linkname: "bin/su"}),
		hdr(tar.Header{Typeflag: tar.TypeFifo, Name: "run/fifo", Mode: 0o620, Uid: 7}),
		hdr(tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}),
		hdr(tar.Header{Typeflag: tar.TypeBlock, Name: "dev/sda", Mode: 0o660, Devmajor: 8}),
		hdr(tar.Header{Typeflag: tar.TypeReg, Name: "big-ids", Mode: 0o644, Uid: 70000, Gid: 2000000}),
		hdr(tar.Header{Typeflag: tar.TypeReg, Name: "etc/.wh.removed"}),
		hdr(tar.Header{Typeflag: tar.TypeDir, Name: "var/cache/", Mode: 0o755}),
		hdr(tar.Header{Typeflag: tar.TypeReg, Name: "var/cache/.wh..wh..opq"}),
	}
	layer, _ := layerDirs(t)
	st, err := Unpack(context.Background(), bytes.NewReader(makeTar(t, entries...)), layer, UnpackOptions{IDs: ids})
	if err != nil {
		t.Fatal(err)
	}
	if st.Skipped != 2 {
		t.Errorf("skipped %d, want the 2 device nodes", st.Skipped)
	}
	host := func(id uint32) uint32 { h, _ := ids.HostUID(id); return h }
	want := []struct {
		name     string
		mode     uint32 // S_IFMT | permissions
		uid, gid uint32
	}{
		{"home/user", unix.S_IFDIR | 0o750, host(1000), host(1000)},
		{"home/user/notes", unix.S_IFREG | 0o600, host(1000), host(100)},
		{"home/user/link", unix.S_IFLNK | 0o777, host(1000), host(1000)},
		{"bin/su", unix.S_IFREG | 0o4755, host(0), host(0)},
		{"bin/wall", unix.S_IFREG | 0o2755, host(0), host(5)},
		{"tmp", unix.S_IFDIR | 0o1777, host(0), host(0)},
		{"run/fifo", unix.S_IFIFO | 0o620, host(7), host(0)},
		{"run", unix.S_IFDIR | 0o755, host(0), host(0)}, // implicit
		{"big-ids", unix.S_IFREG | 0o644, host(65534), host(65534)},
		{"etc/removed", unix.S_IFCHR, host(0), host(0)},
		{".", unix.S_IFDIR | 0o755, host(0), host(0)},
	}
	for _, w := range want {
		var s unix.Stat_t
		if err := unix.Lstat(filepath.Join(layer, w.name), &s); err != nil {
			t.Errorf("%s: %v", w.name, err)
			continue
		}
		mode := s.Mode
		if mode&unix.S_IFMT == unix.S_IFCHR {
			mode &^= 0o7777 // a whiteout's permissions do not matter
			if s.Rdev != 0 {
				t.Errorf("%s: whiteout device %d, want 0/0", w.name, s.Rdev)
			}
		}
		if mode != w.mode || s.Uid != w.uid || s.Gid != w.gid {
			t.Errorf("%s: mode %o owner %d:%d, want %o %d:%d", w.name, mode, s.Uid, s.Gid, w.mode, w.uid, w.gid)
		}
		if w.name == "home/user/notes" || w.name == "home/user" || w.name == "run/fifo" {
			if got := time.Unix(s.Mtim.Unix()); !got.Equal(mtime) {
				t.Errorf("%s: mtime %v, want %v", w.name, got, mtime)
			}
		}
	}
	for _, dev := range []string{"dev/null", "dev/sda"} {
		if _, err := os.Lstat(filepath.Join(layer, dev)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: device nodes must be skipped, got %v", dev, err)
		}
	}
	var a, b unix.Stat_t
	unix.Lstat(filepath.Join(layer, "bin/su"), &a)
	unix.Lstat(filepath.Join(layer, "bin/su2"), &b)
	if a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("bin/su2 is not a hard link of bin/su")
	}
	notes := filepath.Join(layer, "home/user/notes")
	if v := getXattr(t, notes, "user.comment"); v != "hello" {
		t.Errorf("user.comment = %q", v)
	}
	if v := getXattr(t, notes, "trusted.test"); v != "t" {
		t.Errorf("trusted.test = %q (root may set trusted xattrs)", v)
	}
	if v := getXattr(t, notes, "user.overlay.redirect"); v != "" {
		t.Errorf("an archive set the overlay's own xattr: %q", v)
	}
	if v := getXattr(t, filepath.Join(layer, "var/cache"), layertar.XattrOpaque); v != "y" {
		t.Errorf("var/cache opaque = %q", v)
	}

	// Back out: the tar has container ids, whiteouts and the opaque marker
	// again, and no device node.
	var out bytes.Buffer
	if err := layertar.Write(context.Background(), &out, layer, ids, nil); err != nil {
		t.Fatal(err)
	}
	got := readTar(t, out.Bytes())
	wantOut := map[string]string{
		"home/user/":             "dir 750 1000:1000",
		"home/user/notes":        "file 600 1000:100 notes trusted.test=t user.comment=hello",
		"home/user/link":         "symlink 777 1000:1000 ->notes",
		"bin/su":                 "file 4755 0:0",
		"bin/su2":                "link 4755 0:0 ->bin/su",
		"bin/wall":               "file 2755 0:5",
		"tmp/":                   "dir 1777 0:0",
		"run/fifo":               "fifo 620 7:0",
		"big-ids":                "file 644 65534:65534",
		"etc/.wh.removed":        "file 600 0:0",
		"var/cache/":             "dir 755 0:0",
		"var/cache/.wh..wh..opq": "file 600 0:0",
		"home/":                  "dir 755 0:0",
		"bin/":                   "dir 755 0:0",
		"run/":                   "dir 755 0:0",
		"etc/":                   "dir 755 0:0",
		"var/":                   "dir 755 0:0",
	}
	for name, w := range wantOut {
		if got[name] != w {
			t.Errorf("exported %s = %q, want %q", name, got[name], w)
		}
	}
	for name := range got {
		if _, ok := wantOut[name]; !ok {
			t.Errorf("exported an unexpected entry %s: %s", name, got[name])
		}
	}

	// And the export unpacks to the same tree (a round trip).
	again, _ := layerDirs(t)
	if _, err := Unpack(context.Background(), bytes.NewReader(out.Bytes()), again, UnpackOptions{IDs: ids}); err != nil {
		t.Fatal(err)
	}
	var out2 bytes.Buffer
	if err := layertar.Write(context.Background(), &out2, again, ids, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), out2.Bytes()) {
		t.Error("export → unpack → export is not stable")
	}
}

// readTar describes each entry of a tar as "type mode uid:gid [data]
// [->link] [xattrs]".
func readTar(t testing.TB, data []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		kind := map[byte]string{tar.TypeDir: "dir", tar.TypeReg: "file", tar.TypeSymlink: "symlink", tar.TypeLink: "link", tar.TypeFifo: "fifo"}[h.Typeflag]
		s := kind + " " + strconvOct(h.Mode) + " " + itoa(h.Uid) + ":" + itoa(h.Gid)
		if b, _ := io.ReadAll(tr); len(b) > 0 {
			s += " " + string(b)
		}
		if h.Linkname != "" {
			s += " ->" + h.Linkname
		}
		var xs []string
		for k, v := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, layertar.PaxXattrPrefix); ok {
				xs = append(xs, x+"="+v)
			}
		}
		sortStrings(xs)
		if len(xs) > 0 {
			s += " " + strings.Join(xs, " ")
		}
		out[h.Name] = s
	}
}

func getXattr(t testing.TB, path, name string) string {
	t.Helper()
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}
