//go:build linux

package image

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/untrusted"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// benchLayerSize is the size of the generated layer of BenchmarkUnpack.
const benchLayerSize = 200 << 20

// writeBenchLayer writes a layer tar of about size bytes, shaped like a
// distribution's: a few hundred directories, many small files, some large
// ones, symlinks and hard links, with incompressible contents. It returns
// the tar's diffID.
func writeBenchLayer(path string, size int64) (v1.Hash, error) {
	f, err := os.Create(path)
	if err != nil {
		return v1.Hash{}, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	h := &hashWriter{h: sha256.New(), w: bw}
	tw := tar.NewWriter(h)
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var written int64
	for d := 0; written < size; d++ {
		dir := fmt.Sprintf("usr/share/pkg%03d", d)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: mtime}); err != nil {
			return v1.Hash{}, err
		}
		for i := 0; i < 40 && written < size; i++ {
			n := int64(rng.IntN(24 << 10)) // mostly small files
			if i%20 == 0 {
				n = int64(rng.IntN(4 << 20)) // some large ones
			}
			name := fmt.Sprintf("%s/file%02d", dir, i)
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: n, ModTime: mtime, Uid: 0, Gid: 0}); err != nil {
				return v1.Hash{}, err
			}
			off := rng.IntN(len(data) - int(n))
			if _, err := tw.Write(data[off : off+int(n)]); err != nil {
				return v1.Hash{}, err
			}
			written += n
			if i%10 == 5 {
				tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name + ".link", Linkname: filepath.Base(name), ModTime: mtime})
			}
			if i%15 == 7 {
				tw.WriteHeader(&tar.Header{Typeflag: tar.TypeLink, Name: name + ".hard", Linkname: name, ModTime: mtime})
			}
		}
	}
	if err := tw.Close(); err != nil {
		return v1.Hash{}, err
	}
	if err := bw.Flush(); err != nil {
		return v1.Hash{}, err
	}
	return h.sum(), f.Close()
}

// BenchmarkUnpack compares adding a 200 MB layer to the store (read,
// hash, unpack, flush to disk, rename into place) with GNU tar extracting
// the same uncompressed tar on the same disk, which does not flush.
func BenchmarkUnpack(b *testing.B) { benchUnpack(b, false) }

// BenchmarkUnpackSynced is BenchmarkUnpack with a floor that does the
// same durable work: tar -x, then syncfs(2) of the filesystem.
func BenchmarkUnpackSynced(b *testing.B) { benchUnpack(b, true) }

func benchUnpack(b *testing.B, syncFloor bool) {
	if _, err := exec.LookPath("tar"); err != nil {
		b.Fatal("tar is needed for the floor")
	}
	dir := b.TempDir()
	tarPath := filepath.Join(dir, "layer.tar")
	diffID, err := writeBenchLayer(tarPath, benchLayerSize)
	if err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(tarPath)
	b.Run("sdk", func(b *testing.B) {
		s, err := Open(filepath.Join(dir, "store"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(fi.Size())
		for b.Loop() {
			b.StopTimer()
			untrusted.RemoveAll(s.layerPath(diffID))
			syncFS(dir) // no writeback of earlier rounds left to compete
			b.StartTimer()
			src := LayerSource{DiffID: diffID, Open: func() (io.ReadCloser, error) { return os.Open(tarPath) }}
			if _, err := s.AddLayer(context.Background(), src, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("floor", func(b *testing.B) {
		out := filepath.Join(dir, "tar-x")
		b.SetBytes(fi.Size())
		for b.Loop() {
			b.StopTimer()
			untrusted.RemoveAll(out)
			os.Mkdir(out, 0o755)
			syncFS(dir)
			b.StartTimer()
			if msg, err := exec.Command("tar", "-x", "-f", tarPath, "-C", out).CombinedOutput(); err != nil {
				b.Fatalf("tar -x: %v: %s", err, msg)
			}
			if syncFloor {
				if err := syncFS(out); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
