//go:build linux

package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
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

// cacheMountEdits numbers the source changes of BenchmarkDockerfileCacheMount.
var cacheMountEdits atomic.Int64

// BenchmarkDockerfileCacheMount rebuilds a Go program after a change to
// its source: the build stage compiles it with the Go build cache in a
// cache mount (sdk), against the same Dockerfile without the cache mount
// (floor), where every rebuild compiles the standard library packages it
// uses again. The host image is the base (the host's Go under /usr). The
// target is at most 0.33 of the floor.
func BenchmarkDockerfileCacheMount(b *testing.B) {
	if _, err := os.Stat("/usr/local/go/bin/go"); err != nil {
		b.Fatal("the host has no Go toolchain at /usr/local/go: the benchmark's build needs one")
	}
	const withMount = "FROM host AS build\nENV PATH=/usr/local/go/bin:$PATH GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-trimpath\nWORKDIR /src\nCOPY . .\n" +
		"RUN --mount=type=cache,target=/root/.cache/go-build go build -o /out/app .\n" +
		"FROM busybox\nCOPY --from=build /out/app /app\n"
	without := strings.Replace(withMount, "--mount=type=cache,target=/root/.cache/go-build ", "", 1)
	cache := b.TempDir()
	base := busyboxInStore(b, cache)
	rebuild := func(b *testing.B, df string) {
		ctxDir := b.TempDir()
		os.WriteFile(filepath.Join(ctxDir, "go.mod"), []byte("module example.com/app\n\ngo 1.21\n"), 0o644)
		opts := []BuildOption{WithCacheDir(cache), WithContextDir(ctxDir), WithBuildSource("busybox", base), WithBuildSource("host", HostImage())}
		build := func() {
			n := cacheMountEdits.Add(1) // a change no earlier build (-count) saw
			src := fmt.Sprintf("package main\n\nimport (\n\t\"encoding/json\"\n\t\"fmt\"\n)\n\nfunc main() {\n\tb, _ := json.Marshal(%d)\n\tfmt.Println(string(b))\n}\n", n)
			os.WriteFile(filepath.Join(ctxDir, "main.go"), []byte(src), 0o644)
			snap, err := Build(context.Background(), []byte(df), opts...)
			if err != nil {
				b.Fatal(err)
			}
			snap.Close()
		}
		build() // the first build: the source changes from here on
		for b.Loop() {
			build()
		}
	}
	b.Run("rebuild/sdk", func(b *testing.B) { rebuild(b, withMount) })
	b.Run("rebuild/floor", func(b *testing.B) { rebuild(b, without) })
}

// BenchmarkDockerfileParallelStages builds (with no cache) two stages
// that each sleep a second and do not need each other, and a last stage
// that takes a file from each (sdk), against the same Dockerfile with one
// such stage (floor). Run at the same time, the two cost about what one
// does: the target is at most 1.2 of the floor.
func BenchmarkDockerfileParallelStages(b *testing.B) {
	const one = "FROM busybox AS a\nRUN sleep 1 && echo a > /a\nFROM busybox\nCOPY --from=a /a /a\n"
	const two = "FROM busybox AS a\nRUN sleep 1 && echo a > /a\nFROM busybox AS b\nRUN sleep 1 && echo b > /b\nFROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n"
	cache := b.TempDir()
	base := busyboxInStore(b, cache)
	build := func(b *testing.B, df string) {
		for b.Loop() {
			snap, err := Build(context.Background(), []byte(df), WithCacheDir(cache), WithBuildSource("busybox", base), WithNoCache(), WithBuildParallelism(2))
			if err != nil {
				b.Fatal(err)
			}
			snap.Close()
		}
	}
	b.Run("stages/sdk", func(b *testing.B) { build(b, two) })
	b.Run("stages/floor", func(b *testing.B) { build(b, one) })
}
