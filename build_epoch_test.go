package sandbox

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// epochDockerfile writes layers in every way the build's layer writer
// does: COPY of context files, a COPY heredoc (written at build time), and
// a WORKDIR that must create its directories; ENV and LABEL add history.
const epochDockerfile = `FROM scratch
COPY app/ /app/
COPY <<EOF /etc/motd
built reproducibly
EOF
WORKDIR /var/lib/new
ENV A=b
LABEL org.example.title=epoch
`

// epochContext makes a context whose files are dated mtime, except
// app/old.txt, which is dated before any epoch the test uses.
func epochContext(t *testing.T, mtime time.Time) string {
	t.Helper()
	dir := writeContext(t, map[string]string{
		"app/run.sh":   "echo hi\n",
		"app/old.txt":  "old\n",
		"app/sub/data": "x",
	})
	for _, p := range []string{"app/run.sh", "app/sub/data", "app/sub", "app", "."} {
		if err := os.Chtimes(filepath.Join(dir, p), mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(filepath.Join(dir, "app/old.txt"), epochOld, epochOld); err != nil {
		t.Fatal(err)
	}
	return dir
}

// epochOld is a file time older than the epoch: a clamp keeps it.
var epochOld = time.Date(2010, 6, 1, 12, 0, 0, 0, time.UTC)

// epochBuild builds epochDockerfile from ctxDir into a new, empty store
// and exports the image; it returns the image's CacheKey and the OCI
// layout's directory and manifest digest.
func epochBuild(t *testing.T, ctxDir string, opts ...BuildOption) (key, layout, digest string) {
	t.Helper()
	opts = append([]BuildOption{WithCacheDir(t.TempDir()), WithContextDir(ctxDir)}, opts...)
	snap, err := Build(context.Background(), []byte(epochDockerfile), opts...)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	defer snap.Close()
	layout = t.TempDir()
	if err := snap.WriteOCILayout(context.Background(), layout); err != nil {
		t.Fatal(err)
	}
	var index struct {
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	readJSON(t, filepath.Join(layout, "index.json"), &index)
	if len(index.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want 1", len(index.Manifests))
	}
	return snap.CacheKey(), layout, index.Manifests[0].Digest
}

// TestBuildSourceDateEpoch: with WithSourceDateEpoch (or SOURCE_DATE_EPOCH
// in the environment), the same Dockerfile over the same files, dated
// differently and built at different times into different stores, gives
// one image: one CacheKey and one exported manifest digest. Without it,
// the same two builds differ, so the test can tell.
func TestBuildSourceDateEpoch(t *testing.T) {
	epoch := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	ctxA := epochContext(t, time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC))
	ctxB := epochContext(t, time.Date(2025, 9, 2, 17, 30, 0, 0, time.UTC))

	keyA, layoutA, digestA := epochBuild(t, ctxA, WithSourceDateEpoch(epoch))
	time.Sleep(1100 * time.Millisecond) // the next build's clock reads another second
	keyB, _, digestB := epochBuild(t, ctxB, WithSourceDateEpoch(epoch))
	if digestA != digestB {
		t.Errorf("with the epoch, two builds give the digests %s and %s", digestA, digestB)
	}
	if keyA != keyB {
		t.Errorf("with the epoch, two builds give the keys %s and %s", keyA, keyB)
	}

	_, _, plainA := epochBuild(t, ctxA)
	_, _, plainB := epochBuild(t, ctxB)
	if plainA == plainB {
		t.Errorf("without the epoch, both builds give %s: the files' own times should differ in the layers", plainA)
	}

	t.Run("image times", func(t *testing.T) { checkEpochImage(t, layoutA, epoch) })

	t.Run("environment", func(t *testing.T) {
		t.Setenv("SOURCE_DATE_EPOCH", strconv.FormatInt(epoch.Unix(), 10))
		key, _, digest := epochBuild(t, ctxB)
		if digest != digestA || key != keyA {
			t.Errorf("SOURCE_DATE_EPOCH: key %s digest %s, want those of WithSourceDateEpoch: %s %s", key, digest, keyA, digestA)
		}
		// The option wins over the environment.
		_, _, other := epochBuild(t, ctxB, WithSourceDateEpoch(epoch.Add(time.Hour)))
		if other == digestA {
			t.Errorf("WithSourceDateEpoch(epoch+1h) under SOURCE_DATE_EPOCH=epoch gives the epoch's digest")
		}
	})

	t.Run("bad values", func(t *testing.T) {
		for _, v := range []string{"yesterday", "-5", "1.5"} {
			t.Setenv("SOURCE_DATE_EPOCH", v)
			_, err := Build(context.Background(), []byte(epochDockerfile), WithCacheDir(t.TempDir()), WithContextDir(ctxA))
			if err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
				t.Errorf("SOURCE_DATE_EPOCH=%q: %v, want an error naming it", v, err)
			}
		}
		_, err := Build(context.Background(), []byte(epochDockerfile), WithSourceDateEpoch(time.Unix(-1, 0)))
		if err == nil || !strings.Contains(err.Error(), "before 1970") {
			t.Errorf("WithSourceDateEpoch before 1970: %v", err)
		}
	})
}

// checkEpochImage checks the times of an exported image: the config's
// created time and every history entry's are the epoch, no layer entry is
// dated later, and an older file keeps its own time.
func checkEpochImage(t *testing.T, layout string, epoch time.Time) {
	var index struct {
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	readJSON(t, filepath.Join(layout, "index.json"), &index)
	var manifest struct {
		Config struct{ Digest string }   `json:"config"`
		Layers []struct{ Digest string } `json:"layers"`
	}
	readJSON(t, blobPath(layout, index.Manifests[0].Digest), &manifest)
	var cfg struct {
		Created time.Time `json:"created"`
		History []struct {
			Created   time.Time `json:"created"`
			CreatedBy string    `json:"created_by"`
		} `json:"history"`
	}
	readJSON(t, blobPath(layout, manifest.Config.Digest), &cfg)
	if !cfg.Created.Equal(epoch) {
		t.Errorf("config created %v, want %v", cfg.Created, epoch)
	}
	if len(cfg.History) < 5 {
		t.Errorf("%d history entries, want one per step", len(cfg.History))
	}
	for _, h := range cfg.History {
		if !h.Created.Equal(epoch) {
			t.Errorf("history %q created %v, want %v", h.CreatedBy, h.Created, epoch)
		}
	}
	seen := map[string]time.Time{}
	for _, l := range manifest.Layers {
		f, err := os.Open(blobPath(layout, l.Digest))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			seen[strings.TrimSuffix(h.Name, "/")] = h.ModTime
			if h.ModTime.After(epoch) {
				t.Errorf("%s is dated %v, after the epoch %v", h.Name, h.ModTime, epoch)
			}
		}
	}
	for _, p := range []string{"app/run.sh", "app/sub/data", "etc/motd", "var/lib/new"} {
		if got, ok := seen[p]; !ok || !got.Equal(epoch) {
			t.Errorf("%s: dated %v (in the layers: %v), want the epoch %v", p, got, ok, epoch)
		}
	}
	if got := seen["app/old.txt"]; !got.Equal(epochOld) {
		t.Errorf("app/old.txt: dated %v, want its own older time %v", got, epochOld)
	}
}
