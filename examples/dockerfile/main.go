// Command dockerfile builds the Dockerfile beside it with sandbox.Build,
// runs the image it makes, and builds it again to show the cache: the
// second build runs no step.
//
//	go run ./examples/dockerfile
//
// It needs no network: its base image ("busybox") is built first, by a
// Dockerfile held in this program, from the host's static busybox
// (Debian's busybox-static, which `make test` installs).
//
// Both builds pin their times with WithSourceDateEpoch, so the image key
// it prints is the same on every run and every machine with the same
// busybox, even with empty caches: the files it writes for the builds are
// new each run, and without the epoch their times, and the build's own
// clock in the image's history, would make each run's image another.
package main

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/ccsandbox/sandbox"
)

// The build context: the Dockerfile, app/, and .dockerignore.
//
//go:embed Dockerfile .dockerignore app
var buildContext embed.FS

// epoch is the time the images claim for themselves (SOURCE_DATE_EPOCH);
// a project would take its last commit's.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// baseDockerfile makes a busybox image from scratch and the host's binary.
const baseDockerfile = `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "mkdir -p /usr/bin /sbin /usr/sbin /tmp /etc && /bin/busybox --install -s"]
CMD ["sh"]
`

func main() {
	ctx := context.Background()
	// The layer store is the default one (CC_CACHE_DIR, or the user's
	// cache directory), so a second run finds every step cached.
	tmp, err := os.MkdirTemp("", "dockerfile-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	base, err := buildBase(ctx, tmp)
	if err != nil {
		log.Fatal(err)
	}
	defer base.Close()

	dir := filepath.Join(tmp, "context")
	if err := os.CopyFS(dir, buildContext); err != nil {
		log.Fatal(err)
	}
	dockerfile, err := fs.ReadFile(buildContext, "Dockerfile")
	if err != nil {
		log.Fatal(err)
	}
	opts := []sandbox.BuildOption{
		sandbox.WithContextDir(dir),
		sandbox.WithBuildSource("busybox", base),
		sandbox.WithBuildArg("VERSION", "1.0"),
		sandbox.WithSourceDateEpoch(epoch),
		sandbox.WithBuildProgress(sandbox.BuildProgressWriter(os.Stdout)),
	}
	for i, what := range []string{"first build", "rebuild, nothing changed"} {
		fmt.Printf("== %s\n", what)
		start := time.Now()
		img, err := sandbox.Build(ctx, dockerfile, opts...)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("== built in %v: image key %.12s (the same on every run: see WithSourceDateEpoch)\n", time.Since(start).Round(time.Millisecond), img.CacheKey())
		if i == 0 {
			run(ctx, img)
		}
		img.Close()
	}
}

// buildBase builds the busybox base image from the host's binary.
func buildBase(ctx context.Context, tmp string) (*sandbox.Snapshot, error) {
	bin, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, fmt.Errorf("this example needs a static /bin/busybox (Debian: apt-get install busybox-static): %w", err)
	}
	dir := filepath.Join(tmp, "base-context")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "busybox"), bin, 0o755); err != nil {
		return nil, err
	}
	return sandbox.Build(ctx, []byte(baseDockerfile), sandbox.WithContextDir(dir), sandbox.WithSourceDateEpoch(epoch))
}

// run starts a sandbox from the built image and runs its default command.
func run(ctx context.Context, img *sandbox.Snapshot) {
	cfg := img.Config()
	fmt.Printf("== the image: Entrypoint %q, Cmd %q, Env %q\n", cfg.Entrypoint, cfg.Cmd, cfg.Env)
	inst, err := sandbox.New(ctx, img)
	if err != nil {
		log.Fatal(err)
	}
	defer inst.Close()
	out, err := inst.EntrypointCommand().Output()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("== its default command prints: %s", out)
	out, err = inst.EntrypointCommand("sandboxes", "snapshots").Output()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("== with arguments: %s", out)
}
