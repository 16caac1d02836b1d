//go:build linux

package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ccsandbox/sandbox/internal/image/imagetest"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// writeLayout writes img as the one image of a new OCI layout and returns
// the layout's directory.
func writeLayout(t *testing.T, img v1.Image) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestConfigSizeBounded: an image's config is read whole into memory,
// and a hostile image's may be of any size (512 MiB grew a pull's heap by
// 1.2 GiB before its digest was checked; a helper pulls what its clients
// name). A config past MaxConfigSize is refused with ErrTooLarge: from a
// registry before its blob is asked for, from a layout and a docker
// archive without reading it whole; the store is left as it was.
func TestConfigSizeBounded(t *testing.T) {
	check(t)
	base := imagetest.MultiLayer(t, 1024)
	cfg, err := base.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.Config.Env = append(cfg.Config.Env, "PAD="+strings.Repeat("x", MaxConfigSize+1))
	img, err := mutate.ConfigFile(base, cfg)
	if err != nil {
		t.Fatal(err)
	}
	configDigest, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	refused := func(what string, err error, s *Store) {
		t.Helper()
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v; want ErrTooLarge", what, err)
		}
		if recs, _ := s.Images(); len(recs) != 0 {
			t.Errorf("%s: the store has %d images after the refusal", what, len(recs))
		}
	}
	t.Run("registry", func(t *testing.T) {
		c := &blobCounter{gets: map[string]int{}}
		reg := imagetest.StartRegistry(t, imagetest.RegistryOptions{Wrap: func(h http.Handler) http.Handler { return c.wrap(h) }})
		ref := reg.Ref("test/bigconfig:1")
		imagetest.Push(t, reg, ref, img)
		s := openStore(t, Options{})
		_, err := s.Pull(context.Background(), ref, PullOptions{})
		refused("pull", err, s)
		if n := c.count(configDigest); n != 0 {
			t.Errorf("the config's blob was asked for %d times", n)
		}
	})
	t.Run("layout", func(t *testing.T) {
		dir := writeLayout(t, img)
		s := openStore(t, Options{})
		_, err := s.LoadLayout(context.Background(), dir, LoadOptions{})
		refused("a layout", err, s)
	})
	t.Run("docker archive", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "image.tar")
		tag, err := name.NewTag("test/bigconfig:1")
		if err != nil {
			t.Fatal(err)
		}
		if err := tarball.WriteToFile(path, tag, img); err != nil {
			t.Fatal(err)
		}
		s := openStore(t, Options{})
		_, err = s.LoadArchive(context.Background(), path, LoadOptions{})
		refused("a docker archive", err, s)
	})
}

// archiveTestEntry is one entry writeTarEntries writes.
type archiveTestEntry struct {
	name, link string
	typ        byte
	size       int64 // of zero bytes when data is nil
	data       []byte
}

// writeTarEntries writes entries, in order, as a tar archive at path.
func writeTarEntries(t *testing.T, path string, es []archiveTestEntry) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = e.size
			if e.data != nil {
				h.Size = int64(len(e.data))
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if e.data != nil {
				tw.Write(e.data)
			} else {
				buf := make([]byte, 1<<20)
				for left := e.size; left > 0; left -= int64(len(buf)) {
					n := min(left, int64(len(buf)))
					tw.Write(buf[:n])
				}
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLoadArchiveConfigChecked: a docker archive's config and manifest.json
// are sized from the archive's headers before the archive's reader reads
// them whole; the reader takes the first entry of a name and follows
// links, and finds the image again by its tag. So an archive whose config
// or manifest.json has several entries, or is a link, or whose checked
// image's tag another image carries too, is refused before 64 MiB is
// read (each case read it, 157 to 896 MiB allocated, before the check
// looked at every entry).
func TestLoadArchiveConfigChecked(t *testing.T) {
	check(t)
	const big = 64 << 20
	small := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	smallHex := sha256Of(small).Hex
	manifest := func(ds ...map[string]any) []byte {
		b, _ := json.Marshal(ds)
		return b
	}
	one := manifest(map[string]any{"Config": "cfg.json", "RepoTags": []string{"x/y:1"}, "Layers": []string{}})
	cases := []struct {
		name string
		es   []archiveTestEntry
		o    LoadOptions
	}{
		{"duplicate config entry, big first", []archiveTestEntry{
			{name: "cfg.json", size: big},
			{name: "cfg.json", data: small},
			{name: "manifest.json", data: one},
		}, LoadOptions{}},
		{"config is a symlink", []archiveTestEntry{
			{name: "big.bin", size: big},
			{name: "cfg.json", typ: tar.TypeSymlink, link: "big.bin"},
			{name: "manifest.json", data: one},
		}, LoadOptions{}},
		{"config is a hard link", []archiveTestEntry{
			{name: "big.bin", size: big},
			{name: "cfg.json", typ: tar.TypeLink, link: "big.bin"},
			{name: "manifest.json", data: one},
		}, LoadOptions{}},
		{"./ spelling later overrides size", []archiveTestEntry{
			{name: "cfg.json", size: big},
			{name: "./cfg.json", data: small},
			{name: "manifest.json", data: one},
		}, LoadOptions{}},
		{"manifest.json duplicated, big first", []archiveTestEntry{
			{name: "manifest.json", data: []byte(`[{"Config":"` + strings.Repeat("a", big) + `"}]`)},
			{name: "cfg.json", data: small},
			{name: "manifest.json", data: one},
		}, LoadOptions{}},
		{"descriptor chosen by digest, ggcr takes the first with its tag", []archiveTestEntry{
			{name: "big.json", size: big},
			{name: smallHex + ".json", data: small},
			{name: "manifest.json", data: manifest(
				map[string]any{"Config": "big.json", "RepoTags": []string{"x/y:1"}, "Layers": []string{}},
				map[string]any{"Config": smallHex + ".json", "RepoTags": []string{"x/y:1"}, "Layers": []string{}},
			)},
		}, LoadOptions{Digest: v1.Hash{Algorithm: "sha256", Hex: smallHex}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.tar")
			writeTarEntries(t, path, c.es)
			s := openStore(t, Options{})
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := s.LoadArchive(context.Background(), path, c.o)
			runtime.ReadMemStats(&after)
			grew := after.TotalAlloc - before.TotalAlloc
			msg := fmt.Sprint(err)
			if len(msg) > 200 {
				msg = msg[:200] + "..."
			}
			if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrInvalidEntry) && !strings.Contains(msg, "several images carry") {
				t.Errorf("err %s, want it refused before reading (allocated %d MiB)", msg, grew>>20)
			}
			if grew > 32<<20 {
				t.Errorf("refusing it allocated %d MiB", grew>>20)
			}
		})
	}
}

// TestLoadLayoutFilesBounded: a layout's index.json and manifests are read
// whole by its reader: one of any size, or index.json as a link to
// /dev/zero (which never ends), is refused before it is read, and the
// store is left as it was.
func TestLoadLayoutFilesBounded(t *testing.T) {
	check(t)
	img := imagetest.MultiLayer(t, 1024)
	manifest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	pad := func(t *testing.T, path string) { // valid JSON still, past the bound
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(strings.Repeat(" ", MaxConfigSize)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name   string
		spoil  func(t *testing.T, dir string)
		reason error
	}{
		{"index.json too large", func(t *testing.T, dir string) { pad(t, filepath.Join(dir, "index.json")) }, ErrTooLarge},
		{"index.json a link to /dev/zero", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "index.json")
			os.Remove(p)
			if err := os.Symlink("/dev/zero", p); err != nil {
				t.Fatal(err)
			}
		}, ErrInvalidEntry},
		{"manifest too large", func(t *testing.T, dir string) {
			pad(t, filepath.Join(dir, "blobs", manifest.Algorithm, manifest.Hex))
		}, ErrTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := writeLayout(t, img)
			c.spoil(t, dir)
			s := openStore(t, Options{})
			_, err := s.LoadLayout(context.Background(), dir, LoadOptions{})
			if !errors.Is(err, c.reason) {
				t.Errorf("LoadLayout: %v; want %v", err, c.reason)
			}
			if recs, _ := s.Images(); len(recs) != 0 {
				t.Errorf("the store has %d images after the refusal", len(recs))
			}
		})
	}
}
