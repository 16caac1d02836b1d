package dockerfile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ccsandbox/sandbox/internal/idmap"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// fakeExec is an Executor without sandboxes: a RUN records its spec and
// adds a layer with a file /.run naming its command line, so tests see
// what ran, with what environment, and what the cache did.
type fakeExec struct {
	t      *testing.T
	dir    string
	images map[string]Ref

	mu    sync.Mutex // stages run at once
	n     int
	runs  []RunSpec
	cache map[string]Ref
}

type fakeRef struct {
	key    string
	config []byte
	layers []string
}

func (r *fakeRef) Key() string      { return r.key }
func (r *fakeRef) Config() []byte   { return r.config }
func (r *fakeRef) Layers() []string { return r.layers }

func newFakeExec(t *testing.T) *fakeExec {
	f := &fakeExec{t: t, dir: t.TempDir(), cache: map[string]Ref{}, images: map[string]Ref{}}
	base := filepath.Join(f.dir, "base")
	writeTree(t, base, map[string]string{"etc/passwd": "root:x:0:0::/root:/bin/sh\n", "etc/group": "root:x:0:\n"})
	cfg, _ := json.Marshal(v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: v1.Config{Env: []string{"PATH=/bin"}}})
	f.images["base"] = &fakeRef{key: "image-base", config: cfg, layers: []string{base}}
	return f
}

func (f *fakeExec) ref(layers []string, config []byte, parts ...string) *fakeRef {
	h := sha256.New()
	fmt.Fprint(h, layers, string(config), parts)
	return &fakeRef{key: hex.EncodeToString(h.Sum(nil)), config: config, layers: layers}
}

func (f *fakeExec) Resolve(ctx context.Context, name string, p v1.Platform) (Ref, error) {
	if r, ok := f.images[name]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("no image %q", name)
}

func (f *fakeExec) Scratch(ctx context.Context, config []byte) (Ref, error) {
	return f.ref(nil, config, "scratch"), nil
}

func (f *fakeExec) Run(ctx context.Context, base Ref, spec RunSpec) (Ref, error) {
	switch spec.Args[len(spec.Args)-1] {
	case "fail":
		return nil, errors.New("exit status 1")
	case "block": // until the build is cancelled
		<-ctx.Done()
		return nil, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs = append(f.runs, spec)
	f.n++
	dir := filepath.Join(f.dir, fmt.Sprint("run", f.n))
	writeTree(f.t, dir, map[string]string{".run": strings.Join(spec.Args, " ")})
	fmt.Fprintln(spec.Output, "ran", spec.Args[len(spec.Args)-1])
	layers := append(append([]string(nil), base.Layers()...), dir)
	return f.ref(layers, base.Config(), "run", fmt.Sprint(f.n)), nil
}

func (f *fakeExec) TempDir(ctx context.Context) (string, func(), error) {
	d, err := os.MkdirTemp(f.dir, "tmp")
	return d, func() { os.RemoveAll(d) }, err
}

func (f *fakeExec) Commit(ctx context.Context, base Ref, dir string) (Ref, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	dst := filepath.Join(f.dir, fmt.Sprint("layer", f.n))
	if err := os.Rename(dir, dst); err != nil {
		return nil, err
	}
	layers := append(append([]string(nil), base.Layers()...), dst)
	return f.ref(layers, base.Config(), "commit", fmt.Sprint(f.n)), nil
}

func (f *fakeExec) WithConfig(ctx context.Context, base Ref, config []byte) (Ref, error) {
	return f.ref(base.Layers(), config, base.Key()), nil
}

func (f *fakeExec) Lookup(ctx context.Context, key string) (Ref, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.cache[key]
	return r, ok, nil
}

func (f *fakeExec) Record(ctx context.Context, key string, r Ref) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cache[key] = r
	return nil
}

func (f *fakeExec) IDs() idmap.Map { return idmap.Current() }

func (f *fakeExec) CacheMount(ctx context.Context, id string, sharing Sharing, init func(string) error) (string, func(), error) {
	dir := filepath.Join(f.dir, "cache-"+hex.EncodeToString([]byte(id)))
	if _, err := os.Stat(dir); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", nil, err
		}
		if err := init(dir); err != nil {
			return "", nil, err
		}
	}
	return dir, func() {}, nil
}

func (f *fakeExec) Rebase(ctx context.Context, base, layer Ref) (Ref, error) {
	layers := append(append([]string(nil), base.Layers()...), layer.Layers()...)
	return f.ref(layers, base.Config(), "rebase", layer.Key()), nil
}

// build runs df with the fake and returns the result's config.
func (f *fakeExec) build(df string, opts Options) (*v1.ConfigFile, error) {
	r, err := Build(context.Background(), []byte(df), f, opts)
	if err != nil {
		return nil, err
	}
	var cfg v1.ConfigFile
	return &cfg, json.Unmarshal(r.Config(), &cfg)
}

// lastEnv returns the environment of the last RUN as a map.
func (f *fakeExec) lastEnv() map[string]string {
	m := map[string]string{}
	for _, kv := range f.runs[len(f.runs)-1].Env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}
