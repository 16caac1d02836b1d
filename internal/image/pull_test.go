//go:build linux

package image

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/image/imagetest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// blobCounter counts GET requests for blobs by digest.
type blobCounter struct {
	mu   sync.Mutex
	gets map[string]int
}

func (c *blobCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			c.mu.Lock()
			c.gets[r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]]++
			c.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

func (c *blobCounter) count(d v1.Hash) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gets[d.String()]
}

// pushedMulti serves the multi-layer test image and returns its reference,
// its layers' blob digests and the request counter.
func pushedMulti(t *testing.T, bigSize int, wrap func(http.Handler) http.Handler) (string, v1.Image, *blobCounter) {
	t.Helper()
	c := &blobCounter{gets: map[string]int{}}
	reg := imagetest.StartRegistry(t, imagetest.RegistryOptions{Wrap: func(h http.Handler) http.Handler {
		h = c.wrap(h)
		if wrap != nil {
			h = wrap(h)
		}
		return h
	}})
	img := imagetest.MultiLayer(t, bigSize)
	ref := reg.Ref("test/multi:1")
	imagetest.Push(t, reg, ref, img)
	return ref, img, c
}

func layerDigests(t *testing.T, img v1.Image) (digests, diffIDs []v1.Hash) {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range m.Layers {
		digests = append(digests, l.Digest)
	}
	cfg, _ := img.ConfigFile()
	return digests, cfg.RootFS.DiffIDs
}

// checkOneCopy checks that each layer was fetched once and is in the store
// once, and that nothing is left in tmp/.
func checkOneCopy(t *testing.T, s *Store, img v1.Image, c *blobCounter) {
	t.Helper()
	digests, diffIDs := layerDigests(t, img)
	for i, d := range digests {
		if n := c.count(d); n != 1 {
			t.Errorf("layer %d fetched %d times, want 1", i, n)
		}
		if !s.HasLayer(diffIDs[i]) {
			t.Errorf("layer %d is not in the store", i)
		}
	}
	if ids, _ := s.Layers(); len(ids) != len(diffIDs) {
		t.Errorf("the store holds %d layers, want %d", len(ids), len(diffIDs))
	}
	if e := tmpEntries(t, s); len(e) != 0 {
		t.Errorf("tmp/ holds %v", e)
	}
}

func TestPullConcurrentGoroutines(t *testing.T) {
	check(t)
	ref, img, c := pushedMulti(t, 4<<20, nil)
	root := filepath.Join(t.TempDir(), "store")
	want, _ := img.Digest()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range 4 {
		wg.Go(func() {
			s, err := Open(root, Options{})
			if err == nil {
				var p Pulled
				p, err = s.Pull(context.Background(), ref, PullOptions{})
				if err == nil && p.Image.Digest != want {
					err = errors.New("pulled " + p.Image.Digest.String() + ", want " + want.String())
				}
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, _ := Open(root, Options{})
	checkOneCopy(t, s, img, c)
}

// startChild re-executes the test binary to pull ref into the store at root.
func startChild(t *testing.T, root, ref string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=pull", "CC_STORE="+root, "CC_REF="+ref)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

func TestPullTwoProcesses(t *testing.T) {
	check(t)
	ref, img, c := pushedMulti(t, 4<<20, nil)
	root := filepath.Join(t.TempDir(), "store")
	want, _ := img.Digest()
	a, aout := startChild(t, root, ref)
	b, bout := startChild(t, root, ref)
	if err := a.Wait(); err != nil {
		t.Errorf("first child: %v\n%s", err, aout)
	}
	if err := b.Wait(); err != nil {
		t.Errorf("second child: %v\n%s", err, bout)
	}
	for _, out := range []*bytes.Buffer{aout, bout} {
		if !strings.Contains(out.String(), want.String()) {
			t.Errorf("a child pulled %q, want %s", out, want)
		}
	}
	s, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkOneCopy(t, s, img, c)
}

// TestPullKilledMidway kills a pulling process with SIGKILL while it
// unpacks the largest layer, then pulls again: the half-made layer must
// not be taken for complete, the second pull must succeed and verify, and
// Prune must clear what the dead process left.
func TestPullKilledMidway(t *testing.T) {
	check(t)
	const bigSize = 16 << 20
	var stall struct {
		sync.Mutex
		digest  string
		on      bool
		stalled chan struct{}
	}
	stall.stalled = make(chan struct{})
	ref, img, _ := pushedMulti(t, bigSize, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			stall.Lock()
			on := stall.on && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, stall.digest)
			stall.Unlock()
			if !on {
				h.ServeHTTP(w, r)
				return
			}
			// Serve half the blob, then hold the connection until the
			// client goes away.
			rec := &bufferedResponse{header: http.Header{}}
			h.ServeHTTP(rec, r)
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.code)
			w.Write(rec.body.Bytes()[:rec.body.Len()/2])
			w.(http.Flusher).Flush()
			close(stall.stalled)
			<-r.Context().Done()
		})
	})
	digests, diffIDs := layerDigests(t, img)
	big := len(digests) - 1
	stall.Lock()
	stall.digest, stall.on = digests[big].String(), true
	stall.Unlock()

	root := filepath.Join(t.TempDir(), "store")
	child, out := startChild(t, root, ref)
	select {
	case <-stall.stalled:
	case <-time.After(60 * time.Second):
		child.Process.Kill()
		child.Wait()
		t.Fatalf("the child never fetched the big layer:\n%s", out)
	}
	// Wait until the child has unpacked part of it.
	s, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	partial := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !partial; time.Sleep(10 * time.Millisecond) {
		ms, _ := filepath.Glob(s.path("tmp", "layer-*", "fs", "data", "big"))
		for _, m := range ms {
			if fi, err := os.Stat(m); err == nil && fi.Size() > 0 {
				partial = true
			}
		}
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	if !partial {
		t.Fatalf("the child never started writing the big layer:\n%s", out)
	}
	if s.HasLayer(diffIDs[big]) {
		t.Fatal("a half-unpacked layer is in the store")
	}
	if imgs, _ := s.Images(); len(imgs) != 0 {
		t.Fatalf("an image was recorded by a pull that died: %v", imgs)
	}
	if len(tmpEntries(t, s)) == 0 {
		t.Fatal("the killed pull left nothing in tmp/: it was not killed midway")
	}

	stall.Lock()
	stall.on = false
	stall.Unlock()
	p, err := s.Pull(context.Background(), ref, PullOptions{})
	if err != nil {
		t.Fatalf("pull after the crash: %v", err)
	}
	want, _ := img.Digest()
	if p.Image.Digest != want {
		t.Errorf("pulled %s, want %s", p.Image.Digest, want)
	}
	b, err := os.ReadFile(filepath.Join(s.LayerDir(diffIDs[big]), "data", "big"))
	if err != nil || !bytes.Equal(b, imagetest.Random(7, bigSize)) {
		t.Errorf("data/big after the repeated pull: %d bytes, %v", len(b), err)
	}
	rep, err := s.Prune(context.Background())
	if err != nil || rep.Temp == 0 || rep.Layers != 0 {
		t.Errorf("Prune = %+v, %v; want the dead pull's leftovers removed and no layer", rep, err)
	}
	if e := tmpEntries(t, s); len(e) != 0 {
		t.Errorf("tmp/ holds %v after Prune", e)
	}
}

// bufferedResponse records a handler's response.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}
func (b *bufferedResponse) WriteHeader(code int) { b.code = code }

// recordingTransport fails every request, recording its URL; no packet
// leaves the machine.
type recordingTransport struct {
	mu   sync.Mutex
	urls []string
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.urls = append(r.urls, req.URL.String())
	r.mu.Unlock()
	return nil, errors.New("recordingTransport: no network in tests")
}

func TestPullPlainHTTPOffLoopback(t *testing.T) {
	check(t)
	s := openStore(t, Options{})
	// A private-range registry: the registry client would fall back to
	// plain HTTP on its own.
	rt := &recordingTransport{}
	_, err := s.Pull(context.Background(), "10.1.2.3:5000/x:1", PullOptions{Transport: rt})
	if !errors.Is(err, ErrPlainHTTP) {
		t.Errorf("err = %v, want ErrPlainHTTP", err)
	}
	for _, u := range rt.urls {
		if strings.HasPrefix(u, "http:") {
			t.Errorf("a plain-HTTP request went out: %s", u)
		}
	}
	// Allowed explicitly, it may use plain HTTP even off loopback.
	rt = &recordingTransport{}
	_, err = s.Pull(context.Background(), "registry.invalid/x:1", PullOptions{Transport: rt, PlainHTTP: true})
	if err == nil || errors.Is(err, ErrPlainHTTP) {
		t.Errorf("err = %v, want the transport's", err)
	}
	sawHTTP := false
	for _, u := range rt.urls {
		sawHTTP = sawHTTP || strings.HasPrefix(u, "http://registry.invalid/")
	}
	if !sawHTTP {
		t.Errorf("with PlainHTTP no plain-HTTP request was tried: %v", rt.urls)
	}
}
