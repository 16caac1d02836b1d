//go:build linux

package image

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccsandbox/sandbox/internal/image/imagetest"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

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
		dir := filepath.Join(t.TempDir(), "layout")
		p, err := layout.Write(dir, empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.AppendImage(img); err != nil {
			t.Fatal(err)
		}
		s := openStore(t, Options{})
		_, err = s.LoadLayout(context.Background(), dir, LoadOptions{})
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
