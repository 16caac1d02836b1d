// Package testimage builds the images the tests run, without the internet:
// a busybox image made from Debian's busybox-static (installed by `make
// test`), in the shape the Dockerfile conformance cases expect.
package testimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BusyboxPath is where Debian's busybox-static installs its binary.
const BusyboxPath = "/bin/busybox"

// DefaultPath is the PATH of the busybox image's config.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Passwd and Group are the busybox image's /etc/passwd and /etc/group.
const (
	Passwd = "root:x:0:0:root:/root:/bin/sh\n" +
		"daemon:x:1:1:daemon:/usr/sbin:/bin/false\n" +
		"bin:x:2:2:bin:/bin:/bin/false\n" +
		"sys:x:3:3:sys:/dev:/bin/false\n" +
		"user:x:1000:1000:user:/home/user:/bin/sh\n" +
		"nobody:x:65534:65534:nobody:/home:/bin/false\n"
	Group = "root:x:0:\n" +
		"daemon:x:1:\n" +
		"bin:x:2:\n" +
		"sys:x:3:\n" +
		"wheel:x:10:root\n" +
		"user:x:1000:\n" +
		"nobody:x:65534:\n"
)

// epoch is the modification time of every entry, so the image is
// reproducible: the same busybox binary always gives the same digest.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

var busybox struct {
	once sync.Once
	img  v1.Image
	err  error
}

// ErrNoBusybox is returned when Debian's busybox-static is not installed.
var ErrNoBusybox = errors.New("testimage: " + BusyboxPath + " is missing or not static: install Debian's busybox-static (make test does, as root)")

// Busybox returns the busybox test image: one layer with /bin/busybox, an
// applet symlink under /bin for every name `busybox --list` prints (plus
// /usr/bin/env), /etc/passwd and /etc/group, /tmp (1777), /root and /home;
// its config has Env [DefaultPath] and Cmd ["sh"], for the host's platform.
// It returns ErrNoBusybox when busybox-static is not installed. The image is
// built once per process.
func Busybox() (v1.Image, error) {
	busybox.once.Do(func() { busybox.img, busybox.err = buildBusybox() })
	return busybox.img, busybox.err
}

func buildBusybox() (v1.Image, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil || !bytes.HasPrefix(bin, []byte("\x7fELF")) {
		return nil, ErrNoBusybox
	}
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("testimage: busybox --list: %w", err)
	}
	applets := strings.Fields(string(out))
	slices.Sort(applets)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: epoch})
	}
	file := func(name string, mode int64, data []byte) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch})
		tw.Write(data)
	}
	link := func(name, target string) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: epoch})
	}
	for _, d := range []string{"bin", "etc", "home", "usr", "usr/bin", "var"} {
		dir(d, 0o755)
	}
	dir("root", 0o700)
	dir("tmp", 0o1777)
	file("bin/busybox", 0o755, bin)
	for _, a := range applets {
		if a != "busybox" {
			link(path.Join("bin", a), "busybox")
		}
	}
	link("usr/bin/env", "../../bin/busybox")
	file("etc/passwd", 0o644, []byte(Passwd))
	file("etc/group", 0o644, []byte(Group))
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := LayerFromTar(buf.Bytes())
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture = runtime.GOARCH
	cfg.OS = "linux"
	cfg.Created = v1.Time{Time: epoch}
	cfg.Config.Env = []string{DefaultPath}
	cfg.Config.Cmd = []string{"sh"}
	return mutate.ConfigFile(img, cfg)
}

// WriteLayout writes img as an OCI layout in dir, tagged with ref in the
// index annotation org.opencontainers.image.ref.name.
func WriteLayout(dir string, img v1.Image, ref string) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref}))
}

// LayerFromTar returns an OCI gzip layer holding the uncompressed tar data.
// (tarball.LayerFromOpener gives descriptors that validate.Image rejects.)
func LayerFromTar(data []byte) (v1.Layer, error) {
	return partial.UncompressedToLayer(&tarLayer{data: data, diffID: sha256Hash(data)})
}

// tarLayer is an uncompressed layer held in memory.
type tarLayer struct {
	data   []byte
	diffID v1.Hash
}

func (l *tarLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }
func (l *tarLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.data)), nil
}
func (l *tarLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }

func sha256Hash(b []byte) v1.Hash {
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	return h
}
