package imagetest

import (
	"archive/tar"
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/testutil/testimage"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// Entry is one entry of a layer Tar builds.
type Entry struct {
	Name     string
	Type     byte // tar.TypeReg when zero
	Mode     int64
	Data     []byte
	Linkname string
	UID, GID int
}

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Tar returns an uncompressed layer tar of entries.
func Tar(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.Mode
		if mode == 0 {
			mode = 0o644
		}
		h := &tar.Header{Typeflag: typ, Name: e.Name, Mode: mode, Size: int64(len(e.Data)), Linkname: e.Linkname, Uid: e.UID, Gid: e.GID, ModTime: epoch}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.Data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Layer returns a gzip layer holding entries.
func Layer(t testing.TB, entries ...Entry) v1.Layer {
	t.Helper()
	l, err := testimage.LayerFromTar(Tar(t, entries...))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Random returns n bytes of seeded random data.
func Random(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// MultiLayer returns the busybox image with two more layers on top: one
// that adds /etc/motd, removes /etc/group (a whiteout) and makes /home
// opaque with a file owned by uid 1000; one with a file of bigSize random
// bytes at /data/big.
func MultiLayer(t testing.TB, bigSize int) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(Busybox(t),
		Layer(t,
			Entry{Name: "etc/motd", Data: []byte("welcome\n")},
			Entry{Name: "etc/.wh.group"},
			Entry{Name: "home/", Type: tar.TypeDir, Mode: 0o755},
			Entry{Name: "home/.wh..wh..opq"},
			Entry{Name: "home/user/", Type: tar.TypeDir, Mode: 0o700, UID: 1000, GID: 1000},
			Entry{Name: "home/user/.profile", Data: []byte("export A=1\n"), UID: 1000, GID: 1000},
		),
		Layer(t, Entry{Name: "data/", Type: tar.TypeDir, Mode: 0o755}, Entry{Name: "data/big", Data: Random(7, bigSize)}),
	)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
