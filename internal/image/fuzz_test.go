//go:build linux

package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/ccsandbox/sandbox/internal/untrusted"

	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/layertar"
)

// fuzzLimits keep one fuzz input small.
var fuzzLimits = Limits{MaxBytes: 1 << 20, MaxEntries: 256}

// fuzzUnpack unpacks data and checks what must hold for any input: no
// panic, nothing outside the layer directory, errors that are path errors
// naming an entry or reading errors, and a layer that exports and unpacks
// again when it was accepted.
func fuzzUnpack(t *testing.T, base string, data []byte) {
	// One directory per input under base (not t.TempDir, whose cost
	// dominates a minimization's thousands of runs).
	around, err := os.MkdirTemp(base, "in")
	if err != nil {
		t.Fatal(err)
	}
	defer untrusted.RemoveAll(around)
	layer := filepath.Join(around, "layer")
	if err := os.Mkdir(layer, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(around, "sentinel"), nil, 0o644)
	_, err = Unpack(context.Background(), bytes.NewReader(data), layer, UnpackOptions{IDs: idmap.Current(), Limits: fuzzLimits})
	if extra := outside(t, around); len(extra) > 0 {
		t.Fatalf("written outside the layer: %v (err %v)", extra, err)
	}
	if err != nil {
		var pe *fs.PathError
		if (errors.Is(err, ErrUnsafeEntry) || errors.Is(err, ErrInvalidEntry)) && !errors.As(err, &pe) {
			t.Fatalf("an entry error that names no entry: %v", err)
		}
		return
	}
	var out bytes.Buffer
	if err := layertar.Write(context.Background(), &out, layer, idmap.Current(), nil); err != nil {
		if idmap.Current().Single() && errors.Is(err, fs.ErrPermission) {
			return // a file its owner may not read: see the package doc
		}
		t.Fatalf("an accepted layer does not export: %v", err)
	}
	again := filepath.Join(around, "again")
	os.Mkdir(again, 0o755)
	if _, err := Unpack(context.Background(), bytes.NewReader(out.Bytes()), again, UnpackOptions{IDs: idmap.Current(), Limits: Limits{MaxEntries: 1 << 20}}); err != nil {
		t.Fatalf("an exported layer does not unpack: %v", err)
	}
}

// FuzzUnpack feeds raw bytes to Unpack as a layer's tar stream. Each run
// touches the disk, so Go's minimization of every new input (up to a
// minute by default) takes most of a short session: run it with
// -fuzzminimizetime=10x. FuzzUnpackEntries, whose inputs are tiny, does
// not need that.
func FuzzUnpack(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return // larger inputs add nothing but time
		}
		fuzzUnpack(t, base, data)
	})
}

// FuzzUnpackEntries builds tar streams from a compact description, so
// that the fuzzer reaches combinations of names, types and links (a
// symlink then a write below it, a hard link to it, a name again with
// another type) that raw bytes seldom form.
func FuzzUnpackEntries(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{3, 0x10, 1, 0x11, 4, 0x20, 5, 0x21})
	f.Add([]byte{0, 0x31, 6, 0x32, 2, 0x41, 7, 0x42, 1, 0x13})
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, spec []byte) {
		fuzzUnpack(t, base, entriesFromSpec(spec))
	})
}

// entriesFromSpec turns pairs of bytes (type, name) into a tar: names and
// link targets come from a small alphabet of path elements, including
// "..", absolute paths and whiteout names.
func entriesFromSpec(spec []byte) []byte {
	elems := []string{"a", "b", "a/b", "a/b/c", "..", "../x", "/etc", "/", ".", "./a", ".wh.a", "a/.wh..wh..opq", ".wh..wh..opq", "b/.wh.c", "c", "a/c"}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i+1 < len(spec) && i < 64; i += 2 {
		name := elems[int(spec[i+1]&0x0f)%len(elems)]
		target := elems[int(spec[i+1]>>4)%len(elems)]
		h := &tar.Header{Name: name, Mode: 0o755, ModTime: epoch}
		switch spec[i] % 8 {
		case 0:
			h.Typeflag = tar.TypeDir
		case 1, 2:
			h.Typeflag, h.Size = tar.TypeReg, int64(spec[i]>>3)
		case 3, 4:
			h.Typeflag, h.Linkname = tar.TypeSymlink, target
		case 5:
			h.Typeflag, h.Linkname = tar.TypeLink, target
		case 6:
			h.Typeflag = tar.TypeFifo
		case 7:
			h.Typeflag, h.Devmajor = tar.TypeChar, 1
		}
		if tw.WriteHeader(h) != nil {
			continue
		}
		tw.Write(bytes.Repeat([]byte{'x'}, int(h.Size)))
	}
	tw.Close()
	return buf.Bytes()
}

// fuzzSeeds are the hostile and benign archives of the unit tests.
func fuzzSeeds(t testing.TB) [][]byte {
	return [][]byte{
		makeTar(t, fileE("../evil", "x")),
		makeTar(t, fileE("/etc/evil", "x")),
		makeTar(t, linkE("l", "../.."), fileE("l/evil", "x")),
		makeTar(t, linkE("l", "/etc"), hardE("h", "l/passwd")),
		makeTar(t, hardE("h", "../../etc/passwd")),
		makeTar(t, fileE("a", "x"), dirE("a/", 0o755)),
		makeTar(t, fileE("a", "x"), fileE("a", "y")),
		makeTar(t, fileE("big", "0123456789"))[:512+5],
		makeTar(t, dirE("./", 0o755), fileE("etc/hosts", "h"), fileE(".wh.old", ""), fileE("old", "n"),
			dirE("gone/", 0o700), fileE(".wh.gone", ""), fileE("d/.wh..wh..opq", ""), hardE("hosts2", "etc/hosts"),
			tarEntry{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "fifo", Mode: 0o600, ModTime: epoch}},
			tarEntry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "null", Mode: 0o600, Devmajor: 1, Devminor: 3, ModTime: epoch}},
			tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "x", Mode: 0o644, ModTime: epoch, Format: tar.FormatPAX,
				PAXRecords: map[string]string{"SCHILY.xattr.user.a": "b", "SCHILY.xattr.user.overlay.opaque": "y"}}}),
	}
}
