package sandbox

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ccsandbox/sandbox/internal/testutil/testimage"
)

// dfCase is one case of the Dockerfile table: a Dockerfile over the
// test busybox image (or scratch), its context, and what to check.
type dfCase struct {
	name    string
	df      string
	files   map[string]string // the context; a name ending in ".tar.gz" given as "tar:" + "name=content;..." is made into an archive
	opts    []BuildOption
	fresh   func() []BuildOption // more options, made anew for each run (cache ids)
	wantErr []string             // the build must fail with all of these in its error
	// rootlessErr, when set, is wantErr for an unprivileged user, whose
	// sandboxes have root's id only.
	rootlessErr []string
	check       func(t *testing.T, b *dfBuild)
}

// dfBuild is a finished build of a case.
type dfBuild struct {
	t      *testing.T
	snap   *Snapshot
	events []BuildProgress
	ctx    string // the context directory
	inst   *Instance
	opts   []BuildOption
	df     string
}

// buildDockerfile builds df with ctx as context over the shared test store,
// with "busybox" the test busybox image.
func buildDockerfile(t *testing.T, df, ctx string, opts ...BuildOption) (*dfBuild, error) {
	t.Helper()
	b := &dfBuild{t: t, ctx: ctx, df: df}
	var mu sync.Mutex
	b.opts = append([]BuildOption{
		WithCacheDir(testCache),
		WithContextDir(ctx),
		WithBuildSource("busybox", busyboxImage(t)),
		WithPullOptions(WithPullPolicy(PullNever)),
	}, opts...)
	all := append(slices.Clone(b.opts), WithBuildProgress(func(p BuildProgress) {
		mu.Lock()
		b.events = append(b.events, p)
		mu.Unlock()
	}))
	snap, err := Build(context.Background(), []byte(df), all...)
	if err != nil {
		return b, err
	}
	b.snap = snap
	t.Cleanup(func() { snap.Close() })
	return b, nil
}

// again builds the same Dockerfile again, with more options.
func (b *dfBuild) again(opts ...BuildOption) *dfBuild {
	b.t.Helper()
	nb, err := buildDockerfile(b.t, b.df, b.ctx, append(slices.Clone(b.opts[4:]), opts...)...)
	if err != nil {
		b.t.Fatalf("build again: %v", err)
	}
	return nb
}

// sh runs a script in a sandbox of the image and returns its output.
func (b *dfBuild) sh(script string) string {
	b.t.Helper()
	if b.inst == nil {
		b.inst = newInstance(b.t, b.snap)
	}
	return run(b.t, b.inst, script)
}

// file reads a file of the image.
func (b *dfBuild) file(p string) string {
	b.t.Helper()
	if b.inst == nil {
		b.inst = newInstance(b.t, b.snap)
	}
	data, err := b.inst.ReadFile(p)
	if err != nil {
		b.t.Fatalf("%s: %v", p, err)
	}
	return string(data)
}

// ran returns the steps that ran (were not cached).
func (b *dfBuild) ran() []string {
	var out []string
	for _, e := range b.events {
		if e.Done && !e.Cached {
			out = append(out, e.Stage+": "+e.Instruction)
		}
	}
	return out
}

// output returns the lines the build printed.
func (b *dfBuild) output() string {
	var s strings.Builder
	for _, e := range b.events {
		if e.Output != "" {
			s.WriteString(e.Output + "\n")
		}
	}
	return s.String()
}

// ociConfig exports the image and returns its OCI config and manifest.
func (b *dfBuild) ociConfig() (cfg, manifest map[string]any) {
	b.t.Helper()
	dir := b.t.TempDir()
	if err := b.snap.WriteOCILayout(context.Background(), dir); err != nil {
		b.t.Fatal(err)
	}
	var index struct {
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	readJSON(b.t, filepath.Join(dir, "index.json"), &index)
	readJSON(b.t, blobPath(dir, index.Manifests[0].Digest), &manifest)
	readJSON(b.t, blobPath(dir, manifest["config"].(map[string]any)["digest"].(string)), &cfg)
	return cfg, manifest
}

// layerOwners exports the image and returns the owner ("uid:gid") of
// each path in its layers, the highest layer last.
func (b *dfBuild) layerOwners() map[string]string {
	b.t.Helper()
	dir := b.t.TempDir()
	if err := b.snap.WriteOCILayout(context.Background(), dir); err != nil {
		b.t.Fatal(err)
	}
	_, manifest := b.ociConfig()
	owners := map[string]string{}
	for _, l := range manifest["layers"].([]any) {
		f, err := os.Open(blobPath(dir, l.(map[string]any)["digest"].(string)))
		if err != nil {
			b.t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			b.t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.t.Fatal(err)
			}
			owners["/"+strings.TrimSuffix(h.Name, "/")] = strconv.Itoa(h.Uid) + ":" + strconv.Itoa(h.Gid)
		}
		f.Close()
	}
	return owners
}

// writeContext makes a context directory from files.
func writeContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, "/") {
			continue
		}
		data := []byte(content)
		if spec, ok := strings.CutPrefix(content, "tar:"); ok {
			data = tarGz(t, spec)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tarGz makes a gzipped tar of "name=content;name2=content2" (owned by
// 1000:1000).
func tarGz(t *testing.T, spec string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, kv := range strings.Split(spec, ";") {
		name, content, _ := strings.Cut(kv, "=")
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o640, Size: int64(len(content)), Uid: 1000, Gid: 1000, Typeflag: tar.TypeReg})
		tw.Write([]byte(content))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

func eq(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

// writeFile changes a file of a context.
func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// chmod changes the mode of a file of a context.
func chmod(t *testing.T, dir, name string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
		t.Fatal(err)
	}
}

// rootful reports whether sandboxes have more ids than root's.
func rootful() bool { return os.Geteuid() == 0 }

// TestBuildDockerfile is the project's own Dockerfile table: every
// instruction, multi-stage builds, .dockerignore and the cache rules,
// offline over the busybox test image.
func TestBuildDockerfile(t *testing.T) {
	checkBuildLeaks(t)
	src, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	base := buildBase(t, src)
	for _, c := range dockerfileTable {
		t.Run(c.name, func(t *testing.T) {
			ctx := writeContext(t, c.files)
			opts := append([]BuildOption{WithBuildSource("busybox", base)}, c.opts...)
			if c.fresh != nil {
				opts = append(opts, c.fresh()...)
			}
			b, err := buildDockerfile(t, c.df, ctx, opts...)
			if len(c.rootlessErr) > 0 && !rootful() {
				t.Logf("rootless: a sandbox has root's id only; the build must fail clearly")
				c.wantErr, c.check = c.rootlessErr, nil
			}
			if len(c.wantErr) > 0 {
				if err == nil {
					t.Fatalf("the build succeeded; want an error with %q", c.wantErr)
				}
				for _, w := range c.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			if c.check != nil {
				c.check(t, b)
			}
		})
	}
}
