package sandbox

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ccsandbox/sandbox/internal/testutil/testimage"
)

// TestBuildSecrets gives a build secrets (a value and a file), uses them
// the ways Dockerfiles do (a file at /run/secrets, a file at a target with
// a mode, a variable), lets a step that holds one fail, and then greps
// everything the build left for the secrets' bytes: every file of the
// store (layers, records, snapshots, cache mounts, leftovers), the
// exported image (an OCI layout and a docker archive), the progress
// stream and every error. It finds none; the steps saw the right values
// (their digests say so).
func TestBuildSecrets(t *testing.T) {
	checkBuildLeaks(t)
	cache := t.TempDir()
	src, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	base := loadInStore(t, src, cache)
	token := []byte("tok-" + randomHex(t))
	npmrc := []byte("//registry.example/:_authToken=" + randomHex(t) + "\n")
	npmrcFile := filepath.Join(t.TempDir(), "npmrc")
	if err := os.WriteFile(npmrcFile, npmrc, 0o600); err != nil {
		t.Fatal(err)
	}
	secrets := [][]byte{token, npmrc}
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

	var mu sync.Mutex
	var progress bytes.Buffer
	var errs []string
	opts := func(extra ...BuildOption) []BuildOption {
		return append([]BuildOption{
			WithCacheDir(cache), WithBuildSource("busybox", base), WithPullOptions(WithPullPolicy(PullNever)),
			WithBuildSecret("token", token), WithBuildSecretFile("npmrc", npmrcFile),
			WithBuildProgress(func(p BuildProgress) {
				mu.Lock()
				defer mu.Unlock()
				fmt.Fprintf(&progress, "%+v\n", p)
			}),
		}, extra...)
	}
	build := func(df string, extra ...BuildOption) (*Snapshot, error) {
		snap, err := Build(context.Background(), []byte(df), opts(extra...)...)
		if err != nil {
			errs = append(errs, err.Error())
			return nil, err
		}
		t.Cleanup(func() { snap.Close() })
		return snap, nil
	}

	df := "FROM busybox\n" +
		"RUN --mount=type=secret,id=token sha256sum /run/secrets/token | cut -d' ' -f1 > /token.sum\n" +
		"RUN --mount=type=secret,id=npmrc,target=/root/.npmrc,mode=0440 sha256sum /root/.npmrc | cut -d' ' -f1 > /npmrc.sum && stat -c %a /root/.npmrc > /npmrc.mode\n" +
		"RUN --mount=type=secret,id=token,env=TOKEN printf %s \"$TOKEN\" | sha256sum | cut -d' ' -f1 > /env.sum\n" +
		"RUN --mount=type=secret,id=absent ls /run/secrets > /absent.ls 2>&1 || echo none > /absent.ls\n" +
		"CMD [\"sh\"]\n"
	snap, err := build(df)
	if err != nil {
		t.Fatal(err)
	}
	inst := newInstance(t, snap)
	for p, want := range map[string]string{"/token.sum": sum(token), "/npmrc.sum": sum(npmrc), "/env.sum": sum(token), "/npmrc.mode": "440", "/absent.ls": "none"} {
		got, err := inst.ReadFile(p)
		if err != nil || strings.TrimSpace(string(got)) != want {
			t.Errorf("%s = %q (%v), want %q", p, got, err, want)
		}
	}
	if out := run(t, inst, "ls -a /run 2>/dev/null; ls -a /root"); strings.Contains(out, "secrets") || strings.Contains(out, "npmrc") {
		t.Errorf("a mount target is in the image:\n%s", out)
	}

	// The value is in no key: another value changes nothing.
	other, err := Build(context.Background(), []byte(df), append(opts(), WithBuildSecret("token", []byte("another")))...)
	if err != nil {
		t.Fatal(err)
	}
	if other.CacheKey() != snap.CacheKey() {
		t.Error("a new secret value made another image: the value is in a key")
	}
	other.Close()

	// A failing step that holds the secret, a required secret missing.
	if _, err := build("FROM busybox\nRUN --mount=type=secret,id=token,env=TOKEN --mount=type=secret,id=token,target=/s sh -c 'echo failing with the secret in hand; exit 3'\n"); err == nil {
		t.Error("a failing step succeeded")
	}
	if _, err := build("FROM busybox\nRUN --mount=type=secret,id=missing,required=true true\n"); err == nil || !strings.Contains(err.Error(), `secret "missing" is required`) {
		t.Errorf("a missing required secret: %v", err)
	}
	if len(errs) != 2 {
		t.Fatalf("errors %q", errs)
	}

	// The exported image.
	export := t.TempDir()
	if err := snap.WriteOCILayout(context.Background(), filepath.Join(export, "layout")); err != nil {
		t.Fatal(err)
	}
	if err := snap.WriteDockerArchive(context.Background(), filepath.Join(export, "image.tar")); err != nil {
		t.Fatal(err)
	}

	places := map[string][]byte{"the progress stream": progress.Bytes(), "the errors": []byte(strings.Join(errs, "\n"))}
	for name, data := range places {
		for _, s := range secrets {
			if bytes.Contains(data, s) {
				t.Errorf("%s holds a secret", name)
			}
		}
	}
	if !strings.Contains(progress.String(), "--mount=type=secret,id=token") {
		t.Errorf("the progress stream does not show the secret mounts (the test would see nothing): %s", progress.String())
	}
	for _, root := range []string{cache, export} {
		n, hits := grepTree(t, root, secrets)
		if n == 0 {
			t.Errorf("%s: no file read", root)
		}
		for _, h := range hits {
			t.Errorf("%s holds a secret", h)
		}
	}

	// The grep finds a secret that a step does copy into its layer.
	leak, err := build("FROM busybox\nRUN --mount=type=secret,id=token cp /run/secrets/token /leaked\n")
	if err != nil {
		t.Fatal(err)
	}
	leakDir := filepath.Join(t.TempDir(), "leak")
	if err := leak.WriteOCILayout(context.Background(), leakDir); err != nil {
		t.Fatal(err)
	}
	if _, hits := grepTree(t, leakDir, secrets); len(hits) == 0 {
		t.Error("the grep missed a secret a step copied into its image")
	}
	// Nothing of the secrets' host files is left behind.
	for _, d := range []string{"/dev/shm", os.TempDir()} {
		if m, _ := filepath.Glob(filepath.Join(d, fmt.Sprintf("cc-build-secret-%d-*", os.Getpid()))); len(m) > 0 {
			t.Errorf("left behind: %q", m)
		}
	}
}

// grepTree returns how many files under root it read and those that hold
// one of needles (in their content, decompressed when gzipped, their
// name or their link target).
func grepTree(t *testing.T, root string, needles [][]byte) (n int, hits []string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var data []byte
		switch {
		case d.Type().IsRegular():
			data, err = os.ReadFile(p)
			if err != nil {
				return err
			}
			n++
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			data = []byte(target)
		}
		if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) { // a compressed layer: its content too
			if zr, err := gzip.NewReader(bytes.NewReader(data)); err == nil {
				if plain, err := io.ReadAll(zr); err == nil {
					data = append(data, plain...)
				}
			}
		}
		for _, s := range needles {
			if bytes.Contains(data, s) || strings.Contains(p, string(s)) {
				hits = append(hits, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, hits
}

func randomHex(t *testing.T) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}
