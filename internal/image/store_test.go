//go:build linux

package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
)

func openStore(t testing.TB, o Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "store"), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hashOf(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

func gzipped(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func source(blob []byte, diffID, digest v1.Hash) LayerSource {
	return LayerSource{DiffID: diffID, Digest: digest, Open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blob)), nil
	}}
}

// tmpEntries lists the store's tmp/.
func tmpEntries(t testing.TB, s *Store) []string {
	es, err := os.ReadDir(s.path("tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestAddLayer(t *testing.T) {
	check(t)
	s := openStore(t, Options{})
	raw := makeTar(t, fileE("etc/hello", "hi"), fileE(".wh.bin", ""))
	blob := gzipped(t, raw)
	diffID, digest := hashOf(raw), hashOf(blob)
	var last int64
	added, err := s.AddLayer(context.Background(), source(blob, diffID, digest), func(n int64) { last = n })
	if err != nil || !added {
		t.Fatalf("AddLayer = %v, %v", added, err)
	}
	if last != int64(len(blob)) {
		t.Errorf("progress ended at %d, want %d", last, len(blob))
	}
	if b, err := os.ReadFile(filepath.Join(s.LayerDir(diffID), "etc/hello")); err != nil || string(b) != "hi" {
		t.Errorf("etc/hello = %q, %v", b, err)
	}
	li, err := s.Layer(diffID)
	if err != nil || li.Size != 2 || li.Entries != 2 || li.Source != "archive" {
		t.Errorf("Layer = %+v, %v", li, err)
	}
	if added, err := s.AddLayer(context.Background(), source(blob, diffID, digest), nil); err != nil || added {
		t.Errorf("second AddLayer = %v, %v, want false, nil", added, err)
	}
	if e := tmpEntries(t, s); len(e) != 0 {
		t.Errorf("tmp/ holds %v", e)
	}
}

func TestAddLayerRejects(t *testing.T) {
	check(t)
	raw := makeTar(t, fileE("a", "x"))
	blob := gzipped(t, raw)
	var bomb bytes.Buffer // a 64 MiB file of zeros in a ~70 KiB gzip
	zw := gzip.NewWriter(&bomb)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "zeros", Size: 64 << 20, Mode: 0o644})
	io.CopyN(tw, zeroReader{}, 64<<20)
	tw.Close()
	zw.Close()
	bombDiff := hashOf(nil) // never reached: the limit fails first

	cases := []struct {
		name string
		src  LayerSource
		want error
	}{
		{"wrong diffID", source(blob, hashOf([]byte("other")), hashOf(blob)), ErrDigestMismatch},
		{"wrong digest", source(blob, hashOf(raw), hashOf([]byte("other"))), ErrDigestMismatch},
		{"gzip bomb", source(bomb.Bytes(), bombDiff, v1.Hash{}), ErrTooLarge},
		{"hostile", source(makeTar(t, fileE("../x", "")), hashOf(makeTar(t, fileE("../x", ""))), v1.Hash{}), ErrUnsafeEntry},
		{"not a tar", source([]byte("garbage that is not a tar stream at all, not even close................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................"), hashOf(nil), v1.Hash{}), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := openStore(t, Options{Limits: Limits{MaxBytes: 1 << 20}})
			_, err := s.AddLayer(context.Background(), c.src, nil)
			if err == nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if s.HasLayer(c.src.DiffID) {
				t.Error("the layer is in the store after a failed add")
			}
			ids, _ := s.Layers()
			if len(ids) != 0 {
				t.Errorf("layers after a failed add: %v", ids)
			}
			if e := tmpEntries(t, s); len(e) != 0 {
				t.Errorf("tmp/ holds %v after a failed add", e)
			}
		})
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestAddLayerConcurrent(t *testing.T) {
	check(t)
	s := openStore(t, Options{})
	raw := makeTar(t, fileE("f", string(make([]byte, 1<<20))))
	diffID := hashOf(raw)
	var wg sync.WaitGroup
	results := make([]bool, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Go(func() {
			// Each goroutine opens the store itself, as separate
			// processes would.
			s2, err := Open(s.Root(), Options{})
			if err != nil {
				errs[i] = err
				return
			}
			results[i], errs[i] = s2.AddLayer(context.Background(), source(raw, diffID, v1.Hash{}), nil)
		})
	}
	wg.Wait()
	n := 0
	for i := range 4 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if results[i] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d goroutines added the layer, want 1", n)
	}
	if ids, _ := s.Layers(); len(ids) != 1 {
		t.Errorf("layers: %v", ids)
	}
}

func TestStoreRecordsLeasesPrune(t *testing.T) {
	check(t)
	ctx := context.Background()
	s := openStore(t, Options{})
	add := func(name string) v1.Hash {
		raw := makeTar(t, fileE(name, name))
		if _, err := s.AddLayer(ctx, source(raw, hashOf(raw), v1.Hash{}), nil); err != nil {
			t.Fatal(err)
		}
		return hashOf(raw)
	}
	imgLayer, leased, orphan := add("image"), add("leased"), add("orphan")

	// A snapshot's layer, built in a TempDir and moved in.
	td, err := s.TempDir(ctx, "upper")
	if err != nil {
		t.Fatal(err)
	}
	upper := filepath.Join(td.Path(), "upper")
	os.MkdirAll(filepath.Join(upper, "etc"), 0o755)
	os.WriteFile(filepath.Join(upper, "etc", "snap"), []byte("snapshot"), 0o644)
	snap := hashOf([]byte("snapshot key"))
	if moved, err := s.AddLayerDir(ctx, snap, upper); err != nil || !moved {
		t.Fatalf("AddLayerDir = %v, %v", moved, err)
	}
	if _, err := os.Lstat(upper); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("upper still there after the move: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(s.LayerDir(snap), "etc/snap")); err != nil || string(b) != "snapshot" {
		t.Errorf("snapshot layer: %q %v", b, err)
	}
	os.MkdirAll(upper, 0o755)
	if moved, err := s.AddLayerDir(ctx, snap, upper); err != nil || moved {
		t.Errorf("AddLayerDir of a present layer = %v, %v, want false, nil", moved, err)
	}
	if _, err := os.Lstat(upper); err != nil {
		t.Errorf("AddLayerDir of a present layer touched dir: %v", err)
	}

	if err := s.PutImage(ctx, ImageRecord{Digest: hashOf([]byte("img")), Config: []byte(`{}`), Layers: []v1.Hash{imgLayer}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRecord(ctx, Record{Kind: "snapshot", Name: "s1", Layers: []v1.Hash{snap}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRecord(ctx, Record{Kind: "snapshot", Name: "bad", Layers: []v1.Hash{hashOf([]byte("missing"))}}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a record of a missing layer: %v", err)
	}
	if err := s.PutRecord(ctx, Record{Kind: "../x", Name: "n"}); err == nil {
		t.Error("a record kind with a slash was accepted")
	}
	lease, err := s.Lease(ctx, []v1.Hash{leased})
	if err != nil {
		t.Fatal(err)
	}
	// A lease whose process died: a lease file nobody has locked.
	os.WriteFile(s.path("leases", "dead.lease"), []byte(`["`+orphan.String()+`"]`), 0o600)
	// Leftovers of a crashed unpack: a tmp/ dir whose lock nobody holds.
	os.MkdirAll(s.path("tmp", "layer-crashed", "fs", "half"), 0o755)
	os.WriteFile(s.path("tmp", "layer-crashed.lock"), nil, 0o600)

	u, err := s.Usage(ctx)
	if err != nil || u.Layers != 4 || u.Images != 1 || u.Reclaimable != int64(len("orphan")) {
		t.Errorf("Usage = %+v, %v; want 4 layers, 1 image, %d reclaimable", u, err, len("orphan"))
	}
	rep, err := s.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Layers != 1 || rep.Temp != 1 || !s.HasLayer(imgLayer) || !s.HasLayer(leased) || !s.HasLayer(snap) || s.HasLayer(orphan) {
		t.Errorf("Prune = %+v; image %v leased %v snap %v orphan %v", rep, s.HasLayer(imgLayer), s.HasLayer(leased), s.HasLayer(snap), s.HasLayer(orphan))
	}
	if _, err := os.Stat(td.Path()); err != nil {
		t.Errorf("Prune removed a TempDir in use: %v", err)
	}
	if _, err := os.Stat(s.path("leases", "dead.lease")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale lease kept: %v", err)
	}

	lease.Release()
	lease.Release() // twice is fine
	s.DeleteRecord("snapshot", "s1")
	if err := s.DeleteImage(hashOf([]byte("img"))); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteImage(hashOf([]byte("img"))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("deleting a missing image: %v", err)
	}
	td.Remove()
	rep, err = s.Prune(ctx)
	if err != nil || rep.Layers != 3 {
		t.Errorf("Prune = %+v, %v, want 3 layers", rep, err)
	}
	if ids, _ := s.Layers(); len(ids) != 0 {
		t.Errorf("layers left: %v", ids)
	}
	if e := tmpEntries(t, s); len(e) != 0 {
		t.Errorf("tmp/ holds %v", e)
	}
}

func TestOpenOtherMode(t *testing.T) {
	check(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "store.json"), []byte(`{"version":1,"mode":"elsewhere"}`), 0o600)
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrStoreMode) {
		t.Errorf("Open = %v, want ErrStoreMode", err)
	}
	os.WriteFile(filepath.Join(dir, "store.json"), []byte(`{"version":99,"mode":"mapped"}`), 0o600)
	if _, err := Open(dir, Options{}); err == nil {
		t.Error("Open of a future format succeeded")
	}
}

// TestStorePrivate: a store is 0700, and one someone opened up to others
// is made private again when it is opened.
func TestStorePrivate(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	if _, err := Open(root, Options{}); err != nil {
		t.Fatal(err)
	}
	mode := func() os.FileMode {
		fi, err := os.Stat(root)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	if m := mode(); m != 0o700 {
		t.Fatalf("new store: mode %v, want 0700", m)
	}
	for _, d := range []string{"layers", "layers/sha256", "records", "tmp"} {
		if fi, err := os.Stat(filepath.Join(root, d)); err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: %v %v, want private", d, fi.Mode(), err)
		}
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(root, Options{}); err != nil {
		t.Fatal(err)
	}
	if m := mode(); m != 0o700 {
		t.Fatalf("reopened store: mode %v, want 0700", m)
	}
}

// TestStoreRecordNames lists the records of a kind by prefix without
// reading them: another kind's, another prefix's and files that are not
// records are left out, and a record that cannot be read is still named.
func TestStoreRecordNames(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Options{})
	for _, r := range []Record{{Kind: "grant", Name: "alice-1"}, {Kind: "grant", Name: "alice-2"}, {Kind: "grant", Name: "bob-1"}, {Kind: "charge", Name: "alice-3"}} {
		if err := s.PutRecord(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(s.path("records", "grant", "alice-x.tmp"), nil, 0o600)
	os.WriteFile(s.path("records", "grant", "alice-4.json"), []byte("not json"), 0o600)
	got, err := s.RecordNames("grant", "alice-")
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"alice-1", "alice-2", "alice-4"}) {
		t.Errorf("RecordNames(grant, alice-) = %q, %v", got, err)
	}
	if got, err := s.RecordNames("none", ""); err != nil || len(got) != 0 {
		t.Errorf("RecordNames of a kind with no records = %q, %v", got, err)
	}
	if _, err := s.RecordNames("../records", ""); err == nil {
		t.Error("RecordNames of a kind with a slash: no error")
	}
}

// TestAddLayerZstdWindow: a zstd layer asks its decoder for a window of
// up to 512 MB, which the decoder then holds while it reads the layer (a
// 69 KB blob grew the heap by 516 MB). A window past MaxZstdWindow is
// refused, with an error that says so; one of 8 MB, the encoders'
// default, loads.
func TestAddLayerZstdWindow(t *testing.T) {
	check(t)
	s := openStore(t, Options{})
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "f", Mode: 0o644, Size: 5})
	tw.Write([]byte("hello"))
	tw.Close()
	// One zstd frame of one raw block, its header naming a window of
	// 2^windowLog bytes and no content size (a streamed frame's).
	compress := func(windowLog int) []byte {
		size := plain.Len()
		blob := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, byte(windowLog-10) << 3}
		h := size<<3 | 1 // raw, last
		blob = append(blob, byte(h), byte(h>>8), byte(h>>16))
		return append(blob, plain.Bytes()...)
	}
	big := compress(29)
	if _, err := s.AddLayer(context.Background(), source(big, hashOf(plain.Bytes()), v1.Hash{}), nil); err == nil || !strings.Contains(err.Error(), "window") {
		t.Errorf("a zstd layer with a 512 MB window: %v; want refused, naming the window", err)
	}
	if _, err := s.AddLayer(context.Background(), source(compress(23), hashOf(plain.Bytes()), v1.Hash{}), nil); err != nil {
		t.Errorf("a zstd layer with an 8 MB window: %v", err)
	}
}
