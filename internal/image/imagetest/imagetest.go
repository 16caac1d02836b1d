// Package imagetest serves images to tests without the internet: an
// in-process registry (go-containerregistry's, optionally behind basic
// authentication), Debian's docker-registry on loopback, and helpers that
// push the busybox test image and a multi-platform index.
package imagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/testutil/testimage"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Registry is a registry a test pushes to and pulls from.
type Registry struct {
	Host     string // host:port on loopback
	Username string // empty when no authentication is needed
	Password string
}

// Ref returns a reference to repo:tag (or repo@digest) in the registry.
func (r *Registry) Ref(repoAndTag string) string { return r.Host + "/" + repoAndTag }

// Auth returns the credentials of the registry for pushing.
func (r *Registry) Auth() authn.Authenticator {
	if r.Username == "" {
		return authn.Anonymous
	}
	return &authn.Basic{Username: r.Username, Password: r.Password}
}

// RegistryOptions configure StartRegistry.
type RegistryOptions struct {
	Username, Password string // basic authentication when set
	// Wrap, when set, wraps the registry's handler (to count, stall or
	// break requests).
	Wrap func(http.Handler) http.Handler
}

// StartRegistry serves go-containerregistry's in-memory registry on a
// loopback httptest server, closed when the test ends.
func StartRegistry(t testing.TB, o RegistryOptions) *Registry {
	t.Helper()
	h := registry.New(registry.Logger(discardLogger()))
	if o.Username != "" {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			u, p, ok := req.BasicAuth()
			if !ok || u != o.Username || p != o.Password {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
			inner.ServeHTTP(w, req)
		})
	}
	if o.Wrap != nil {
		h = o.Wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return &Registry{Host: strings.TrimPrefix(srv.URL, "http://"), Username: o.Username, Password: o.Password}
}

// RequireTool fails the test, naming the Debian package, when a program
// the test needs is not installed (`make test` installs them as root).
func RequireTool(t testing.TB, program, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		t.Fatalf("%s is not installed: install Debian's %s (make test does, as root: apt-get install %s)", program, debianPackage, debianPackage)
	}
	return p
}

// StartDockerRegistry runs Debian's docker-registry bound to 127.0.0.1 on
// a free port, with its own config and storage in a temp dir, stopped when
// the test ends.
func StartDockerRegistry(t testing.TB) *Registry {
	t.Helper()
	bin := RequireTool(t, "docker-registry", "docker-registry")
	dir := t.TempDir()
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n",
			filepath.Join(dir, "data"), addr)
		cfgPath := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cmd := exec.Command(bin, "serve", cfgPath)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting docker-registry: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		}
		if err := waitReady(addr, exited); err != nil {
			stop()
			if attempt < 3 {
				continue // the port was taken meanwhile
			}
			t.Fatalf("docker-registry did not start: %v\n%s", err, out.String())
		}
		t.Cleanup(stop)
		return &Registry{Host: addr}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitReady(addr string, exited <-chan error) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		default:
		}
		resp, err := client.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("timed out")
}

// Push pushes img to ref in reg.
func Push(t testing.TB, reg *Registry, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithAuth(reg.Auth()), remote.WithContext(context.Background())); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
}

// PushIndex pushes idx to ref in reg.
func PushIndex(t testing.TB, reg *Registry, ref string, idx v1.ImageIndex) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx, remote.WithAuth(reg.Auth())); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
}

// Busybox returns the busybox test image, failing the test when Debian's
// busybox-static is missing.
func Busybox(t testing.TB) v1.Image {
	t.Helper()
	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// ForPlatform returns img with its config's platform changed (the content
// stays: it is test data).
func ForPlatform(t testing.TB, img v1.Image, arch, variant string) v1.Image {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.Variant = arch, variant
	out, err := mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// MultiPlatform returns an index of images, each with its config's
// platform in its descriptor.
func MultiPlatform(t testing.TB, imgs ...v1.Image) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, img := range imgs {
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant},
		}})
	}
	return mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
}
