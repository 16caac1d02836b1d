//go:build linux

package image

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// tarEntry is one entry of a test archive: a header and, for files, data.
type tarEntry struct {
	hdr  tar.Header
	data string
}

var epoch = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func dirE(name string, mode int64) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: epoch}}
}

func fileE(name, data string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch}, data: data}
}

func linkE(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: epoch}}
}

func hardE(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, ModTime: epoch}}
}

// makeTar returns the tar of entries.
func makeTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("writing %s: %v", h.Name, err)
		}
		if e.data != "" {
			if _, err := tw.Write([]byte(e.data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layerDirs returns an empty layer directory and the directory around it,
// which holds a sentinel file: nothing else may ever appear there.
func layerDirs(t testing.TB) (layer, around string) {
	t.Helper()
	around = t.TempDir()
	layer = filepath.Join(around, "layer")
	if err := os.Mkdir(layer, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(around, "sentinel"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return layer, around
}

// outside lists what is in around besides the layer directory and the
// sentinel: it must be empty.
func outside(t testing.TB, around string) []string {
	t.Helper()
	var extra []string
	filepath.Walk(around, func(p string, fi os.FileInfo, err error) error {
		rel, _ := filepath.Rel(around, p)
		switch {
		case rel == "." || rel == "sentinel" || rel == "layer":
		case len(rel) > 6 && rel[:6] == "layer/":
			return filepath.SkipDir
		default:
			extra = append(extra, rel)
		}
		return nil
	})
	sort.Strings(extra)
	return extra
}

// check starts the leak check every test of the package runs.
func check(t testing.TB, tempPrefixes ...string) {
	leakcheck.Check(t, append(tempPrefixes, "cc-image-")...)
}

func strconvOct(m int64) string { return strconv.FormatInt(m, 8) }
func itoa(i int) string         { return strconv.Itoa(i) }
func sortStrings(s []string)    { sort.Strings(s) }
