//go:build linux

package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ccsandbox/sandbox/internal/testutil/testimage"
)

// BenchmarkDockerfileBuild builds examples/dockerfile (a two-stage build
// with WORKDIR, COPY, RUN and COPY --from) over the busybox test image:
// cold (the base image in the store, every step run: WithNoCache) and a
// rebuild with nothing changed (every step from the cache; target: at most
// 50 ms). The floor is `buildah bud` of the same Dockerfile and context
// with the same base image in its storage, run the same two ways
// (--no-cache, then --layers over its own cache), as root with the
// workarounds of HOST-NOTES (ulimits, a private mount namespace without
// the cgroup2 mount for crun). Without buildah, or without root, the floor
// is skipped and says why.
func BenchmarkDockerfileBuild(b *testing.B) {
	df, err := os.ReadFile("examples/dockerfile/Dockerfile")
	if err != nil {
		b.Fatal(err)
	}
	ctxDir, _ := filepath.Abs("examples/dockerfile")
	cache := b.TempDir()
	base := busyboxInStore(b, cache)
	opts := []BuildOption{WithCacheDir(cache), WithContextDir(ctxDir), WithBuildSource("busybox", base), WithBuildArg("VERSION", "1.0")}
	build := func(b *testing.B, extra ...BuildOption) {
		snap, err := Build(context.Background(), df, append(opts, extra...)...)
		if err != nil {
			b.Fatal(err)
		}
		snap.Close()
	}
	var bh *buildahFloor
	floor := func(b *testing.B) *buildahFloor {
		if bh == nil {
			bh = newBuildahFloor(b, ctxDir)
		}
		if bh.skip != "" {
			b.Skip(bh.skip)
		}
		return bh
	}
	b.Cleanup(func() {
		if bh != nil {
			bh.close()
		}
	})
	b.Run("cold/sdk", func(b *testing.B) {
		for b.Loop() {
			build(b, WithNoCache())
		}
	})
	b.Run("cold/floor", func(b *testing.B) {
		f := floor(b)
		for b.Loop() {
			f.bud(b, "--no-cache")
		}
	})
	b.Run("rebuild/sdk", func(b *testing.B) {
		build(b)
		for b.Loop() {
			build(b)
		}
	})
	b.Run("rebuild/floor", func(b *testing.B) {
		f := floor(b)
		f.bud(b, "--layers")
		for b.Loop() {
			f.bud(b, "--layers")
		}
	})
}

// busyboxInStore loads the busybox test image into the store at cache.
func busyboxInStore(b *testing.B, cache string) *Image {
	src, err := testimage.Busybox()
	if err != nil {
		b.Fatal(err)
	}
	return loadInStore(b, src, cache)
}

// buildahFloor runs buildah with its storage and config in a temporary
// directory, the busybox test image pulled into it as "busybox".
type buildahFloor struct {
	dir, ctxDir string
	env         []string
	skip        string // why the floor cannot run here
}

func newBuildahFloor(b *testing.B, ctxDir string) *buildahFloor {
	f := &buildahFloor{ctxDir: ctxDir}
	if _, err := exec.LookPath("buildah"); err != nil {
		f.skip = "buildah is not installed (Debian: apt-get install buildah): the floor cannot run"
		return f
	}
	if os.Geteuid() != 0 {
		f.skip = "buildah runs here as root only (rootless buildah needs subordinate ids): the floor cannot run"
		return f
	}
	dir, err := os.MkdirTemp("", "buildah-floor-")
	if err != nil {
		b.Fatal(err)
	}
	f.dir = dir
	storage := fmt.Sprintf("[storage]\ndriver = \"overlay\"\nrunroot = %q\ngraphroot = %q\n", filepath.Join(dir, "run"), filepath.Join(dir, "root"))
	conf := "[containers]\ndefault_ulimits = [\"nofile=20000\", \"nproc=32768\"]\n"
	os.WriteFile(filepath.Join(dir, "storage.conf"), []byte(storage), 0o644)
	os.WriteFile(filepath.Join(dir, "containers.conf"), []byte(conf), 0o644)
	f.env = append(os.Environ(), "CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"), "CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"))
	src, err := testimage.Busybox()
	if err != nil {
		b.Fatal(err)
	}
	layout := filepath.Join(dir, "layout")
	if err := testimage.WriteLayout(layout, src, "busybox"); err != nil {
		b.Fatal(err)
	}
	for _, args := range [][]string{{"pull", "oci:" + layout + ":busybox"}, {"tag", "localhost" + layout, "busybox"}} {
		if out, err := f.buildah(args...).CombinedOutput(); err != nil {
			f.skip = fmt.Sprintf("buildah %s failed here: %v: %s", args[0], err, out)
			return f
		}
	}
	return f
}

// buildah returns a buildah command in a private mount namespace without
// the cgroup2 mount of a hybrid host (crun refuses hybrid cgroups).
func (f *buildahFloor) buildah(args ...string) *exec.Cmd {
	script := `umount /sys/fs/cgroup/unified 2>/dev/null; exec buildah "$@"`
	cmd := exec.Command("unshare", append([]string{"-m", "sh", "-c", script, "buildah"}, args...)...)
	cmd.Env = f.env
	return cmd
}

// bud builds the Dockerfile of the context with buildah.
func (f *buildahFloor) bud(b *testing.B, mode string) {
	out, err := f.buildah("bud", "--pull-never", "--network=none", mode, "--quiet", "--build-arg", "VERSION=1.0", "-t", "greet", f.ctxDir).CombinedOutput()
	if err != nil {
		b.Fatalf("buildah bud: %v\n%s", err, out)
	}
}

func (f *buildahFloor) close() {
	if f.dir == "" {
		return
	}
	f.buildah("rm", "--all").Run()
	f.buildah("rmi", "--all", "--force").Run()
	os.RemoveAll(f.dir)
}
