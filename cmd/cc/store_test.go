package main

import (
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
	"github.com/ccsandbox/sandbox/internal/testutil/testimage"
)

// serveBusybox serves the busybox test image from a registry on loopback
// and returns its reference there, and the registry's address.
func serveBusybox(t *testing.T) (ref, host string) {
	t.Helper()
	src, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	host = strings.TrimPrefix(reg.URL, "http://")
	ref = host + "/test/busybox:1"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, src); err != nil {
		t.Fatal(err)
	}
	return ref, host
}

// df returns what cc df --json reports for the store at cache.
func df(t *testing.T, cache string) usageJSON {
	t.Helper()
	r := runCCIn(t, cache, nil, "df", "--json")
	var u usageJSON
	if err := json.Unmarshal([]byte(r.stdout), &u); r.code != 0 || err != nil {
		t.Fatalf("cc df --json: %s (%v)", r, err)
	}
	return u
}

// TestStoreCommands pulls an image, lists, runs, removes and prunes it,
// and checks what cc df reports after each step.
func TestStoreCommands(t *testing.T) {
	leakcheck.Check(t)
	ref, host := serveBusybox(t)
	cache := t.TempDir()
	if u := df(t, cache); u.Images != 0 || u.Layers != 0 || u.Bytes != 0 {
		t.Fatalf("a new store: %+v", u)
	}

	r := runCCIn(t, cache, nil, "pull", ref)
	fields := strings.Fields(r.stdout)
	if r.code != 0 || len(fields) != 2 || fields[0] != ref || !strings.HasPrefix(fields[1], "sha256:") {
		t.Fatalf("cc pull: %s; want the reference and digest", r)
	}
	digest := fields[1]
	pulled := df(t, cache)
	if pulled.Images != 1 || pulled.Layers != 1 || pulled.Bytes <= 0 || pulled.Reclaimable != 0 {
		t.Errorf("after a pull, df = %+v; want 1 image, 1 layer, bytes, nothing reclaimable", pulled)
	}

	r = runCCIn(t, cache, nil, "images", "--json")
	var list []imageJSON
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0].Digest != digest ||
		len(list[0].References) != 1 || list[0].References[0] != ref || list[0].Size != pulled.Bytes {
		t.Errorf("cc images --json: %s (%v); want %s as %s, of %d bytes", r, err, digest, ref, pulled.Bytes)
	}
	short := digest[len("sha256:"):][:12]
	if r := runCCIn(t, cache, nil, "images"); r.code != 0 || !strings.Contains(r.stdout, ref) || !strings.Contains(r.stdout, short) {
		t.Errorf("cc images: %s; want a line with %s and %s", r, ref, short)
	}
	// The image runs by reference (from the store: no pull) and by id.
	runCCIn(t, cache, nil, "run", ref, "echo", "by reference").want(t, 0, "by reference\n")
	runCCIn(t, cache, nil, "run", short, "echo", "by id").want(t, 0, "by id\n")

	runCCIn(t, cache, nil, "rmi", ref).want(t, 0, "removed "+ref+"\n")
	if r := runCCIn(t, cache, nil, "images", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("cc images --json after rmi: %s", r)
	}
	if u := df(t, cache); u.Images != 0 || u.Layers != 1 || u.Reclaimable != pulled.Bytes {
		t.Errorf("after rmi, df = %+v; want no image and its %d bytes reclaimable", u, pulled.Bytes)
	}
	if r := runCCIn(t, cache, nil, "prune"); r.code != 0 || !strings.HasPrefix(r.stdout, "removed 1 layers") {
		t.Errorf("cc prune: %s", r)
	}
	if u := df(t, cache); u.Images != 0 || u.Layers != 0 || u.Bytes != 0 {
		t.Errorf("after prune, df = %+v; want an empty store", u)
	}

	// Removing what is not there, and pulling what the registry lacks.
	if r := runCCIn(t, cache, nil, "rmi", ref); r.code != exitOwn || !strings.Contains(r.stderr, "could not remove") {
		t.Errorf("cc rmi of a removed image: %s; want exit 125", r)
	}
	if r := runCCIn(t, cache, nil, "pull", host+"/test/nothing:1"); r.code != exitOwn || !strings.Contains(r.stderr, "nothing") {
		t.Errorf("cc pull of an image the registry lacks: %s; want exit 125 naming it", r)
	}
	noSandboxLeft(t, cache)
}
