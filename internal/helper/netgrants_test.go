package helper

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/snapshot"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// startAndClose starts a sandbox of the image digest for c, closes it,
// and returns the start's error.
func startAndClose(c *NetClient, digest string) error {
	ni, _, err := c.Start(context.Background(), &ipc.RemoteNewReq{Digest: digest})
	if err == nil {
		ni.Close()
	}
	return err
}

// snapshotOf snapshots a sandbox of the image digest for c (closed then)
// and returns the snapshot's info.
func snapshotOf(t *testing.T, c *NetClient, digest string) *snapshot.Info {
	t.Helper()
	ni, _, err := c.Start(context.Background(), &ipc.RemoteNewReq{Digest: digest})
	if err != nil {
		t.Fatal(err)
	}
	defer ni.Close()
	info, err := ni.Snapshot(context.Background(), nil, nil, snapshot.Parent{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestContentIsItsClients: what one client brings by content is its own.
// Another client, knowing only digests, is told the layers are missing,
// cannot record an image of them nor start one by digest, nor a snapshot
// of the first client's sandbox; bytes that are not the layer do not
// give it the layer even though the helper holds it, nor does having sent
// them before the owner did; sending the very bytes does.
func TestContentIsItsClients(t *testing.T) {
	leakcheck.Check(t)
	s, ca := startServer(t, time.Minute)
	alice, bob := dialAs(t, s, ca, "alice"), dialAs(t, s, ca, "bob")
	ctx := context.Background()
	secret := tarOf(t, &tar.Header{Name: "secret", Typeflag: tar.TypeReg})
	later := tarOf(t, &tar.Header{Name: "later", Typeflag: tar.TypeReg})
	forged := bytes.Clone(secret)
	copy(forged[bytes.Index(forged, []byte("secret\x00")):], "sekret") // same length, other bytes

	// bob sends garbage under the digest of a layer alice sends after.
	if err := bob.PutLayer(ctx, diffIDOf(later), int64(len(later)), sendBytes(bytes.Repeat([]byte{1}, len(later)))); err == nil {
		t.Error("bob's garbage accepted")
	}
	for _, l := range [][]byte{secret, later} {
		if err := alice.PutLayer(ctx, diffIDOf(l), int64(len(l)), sendBytes(l)); err != nil {
			t.Fatal(err)
		}
	}
	config := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%q,%q]}}`, diffIDOf(secret), diffIDOf(later))
	img, err := alice.PutImage(ctx, config)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := alice.MissingLayers(ctx, []string{diffIDOf(secret), diffIDOf(later)}); err != nil || len(m) != 0 {
		t.Errorf("alice's MissingLayers of her own layers: %v, %v", m, err)
	}

	if m, err := bob.MissingLayers(ctx, []string{diffIDOf(secret), diffIDOf(later)}); err != nil || len(m) != 2 {
		t.Errorf("bob's MissingLayers of alice's layers: %v, %v; want both missing", m, err)
	}
	if _, err := bob.PutImage(ctx, config); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("bob recording alice's image: %v, want fs.ErrNotExist", err)
	}
	if err := startAndClose(bob, img.Digest); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("bob starting alice's image by digest: %v, want fs.ErrNotExist", err)
	}
	if err := bob.PutLayer(ctx, diffIDOf(secret), int64(len(forged)), sendBytes(forged)); err == nil {
		t.Error("bob's forged bytes for a layer the helper holds: accepted")
	}
	if m, _ := bob.MissingLayers(ctx, []string{diffIDOf(secret), diffIDOf(later)}); len(m) != 2 {
		t.Errorf("after bob's forgery and early garbage, bob's MissingLayers: %v; want both missing", m)
	}

	rec, err := SnapshotImage(snapshotOf(t, alice, img.Digest))
	if err != nil {
		t.Fatal(err)
	}
	if err := startAndClose(bob, rec.Digest.String()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("bob starting alice's snapshot by digest: %v, want fs.ErrNotExist", err)
	}
	if err := startAndClose(alice, rec.Digest.String()); err != nil {
		t.Errorf("alice starting her snapshot: %v", err)
	}

	for _, l := range [][]byte{secret, later} {
		if err := bob.PutLayer(ctx, diffIDOf(l), int64(len(l)), sendBytes(l)); err != nil {
			t.Errorf("bob sending the layer's very bytes: %v", err)
		}
	}
	if m, err := bob.MissingLayers(ctx, []string{diffIDOf(secret), diffIDOf(later)}); err != nil || len(m) != 0 {
		t.Errorf("bob's MissingLayers once he sent them: %v, %v", m, err)
	}
	if a, err := bob.PutImage(ctx, config); err != nil || a.Digest != img.Digest {
		t.Errorf("bob recording the image once he sent its layers: %+v, %v", a, err)
	}
	if err := startAndClose(bob, img.Digest); err != nil {
		t.Errorf("bob starting the image he recorded: %v", err)
	}
}

// pushLayerImage pushes to a registry at host, as repo:latest, an image
// of one layer whose blob is blob (a plain tar, or junk) and whose config
// names the layer diffID (whatever blob is), and returns its reference.
func pushLayerImage(t *testing.T, host, repo string, blob []byte, diffID string) string {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer(blob, types.OCIUncompressedLayer))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	h, _ := v1.NewHash(diffID)
	cf.RootFS.DiffIDs = []v1.Hash{h}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	ref := host + "/" + repo + ":latest"
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestPullCannotLaunder: a client cannot get another's layer through a
// registry of its own whose image names the layer's digest with a blob
// that is not the layer (the helper, holding the layer, would otherwise
// not fetch it): the blob is fetched and checked, the pull fails, and the
// layer stays missing for that client. An image whose blob is the layer's
// very bytes is pulled, and the client may use the layer then. A record
// of an image whose layer the client may not use (one made, say, in the
// moment a snapshot's layer is not yet marked private) starts nothing.
func TestPullCannotLaunder(t *testing.T) {
	leakcheck.Check(t)
	s, ca := startServer(t, time.Minute)
	alice, bob := dialAs(t, s, ca, "alice"), dialAs(t, s, ca, "bob")
	ctx := context.Background()
	secret := tarOf(t, &tar.Header{Name: "secret", Typeflag: tar.TypeReg})
	if err := alice.PutLayer(ctx, diffIDOf(secret), int64(len(secret)), sendBytes(secret)); err != nil {
		t.Fatal(err)
	}
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")

	// The refusal reads the same whether or not the helper holds the
	// layer, for a pull and for an upload: no oracle of what others sent.
	absent := diffIDOf([]byte("a layer nobody sent"))
	after := func(err error, names ...string) string { // the error, its layer and image named alike
		if err == nil {
			return "<accepted>"
		}
		msg := err.Error()
		for _, n := range names {
			msg = strings.ReplaceAll(msg, n, "NAME")
		}
		return msg
	}
	junk := pushLayerImage(t, host, "junk", []byte("not the layer"), diffIDOf(secret))
	junk2 := pushLayerImage(t, host, "junk2", []byte("not the layer"), absent)
	_, err1 := bob.Pull(ctx, &ipc.PullReq{Ref: junk, PlainHTTP: true})
	_, err2 := bob.Pull(ctx, &ipc.PullReq{Ref: junk2, PlainHTTP: true})
	if err1 == nil || after(err1, diffIDOf(secret), junk) != after(err2, absent, junk2) {
		t.Errorf("pulls naming a held layer and an absent one over a junk blob:\n  %v\n  %v", err1, err2)
	}
	for _, body := range [][]byte{[]byte("not a tar at all, not at all"), bytes.Repeat([]byte{0}, len(secret))} {
		err1 := bob.PutLayer(ctx, diffIDOf(secret), int64(len(body)), sendBytes(body))
		err2 := bob.PutLayer(ctx, absent, int64(len(body)), sendBytes(body))
		if err1 == nil || after(err1, diffIDOf(secret)) != after(err2, absent) {
			t.Errorf("uploads of %q under a held layer's digest and an absent one's:\n  %v\n  %v", body[:8], err1, err2)
		}
	}
	if m, _ := bob.MissingLayers(ctx, []string{diffIDOf(secret)}); len(m) != 1 {
		t.Errorf("after bob's laundering pull, his MissingLayers: %v; want the layer missing", m)
	}

	// A record made for bob of an image of alice's layer (as in the moment
	// a snapshot's layer is not yet private) is no way in.
	config := fmt.Appendf(nil, `{"os":"linux","rootfs":{"type":"layers","diff_ids":[%q]}}`, diffIDOf(secret))
	h, _ := v1.NewHash(diffIDOf(secret))
	rec := image.ImageRecord{Digest: image.ConfigDigest(config), Config: config, Layers: []v1.Hash{h}}
	if err := s.putClientImage(ctx, "bob", rec); err != nil {
		t.Fatal(err)
	}
	if err := startAndClose(bob, rec.Digest.String()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("bob starting an image record of a layer he may not use: %v, want fs.ErrNotExist", err)
	}

	real := pushLayerImage(t, host, "real", secret, diffIDOf(secret))
	a, err := bob.Pull(ctx, &ipc.PullReq{Ref: real, PlainHTTP: true})
	if err != nil {
		t.Fatalf("bob pulling an image whose blob is the layer: %v", err)
	}
	if m, err := bob.MissingLayers(ctx, []string{diffIDOf(secret)}); err != nil || len(m) != 0 {
		t.Errorf("bob's MissingLayers once the registry served him the layer: %v, %v", m, err)
	}
	if err := startAndClose(bob, a.Digest); err != nil {
		t.Fatalf("bob starting the image he pulled: %v", err)
	}

	// A refused upload under a public layer's digest marks nothing: once
	// the public image is pulled, its layer is every client's.
	public := tarOf(t, &tar.Header{Name: "public", Typeflag: tar.TypeReg})
	mallory, carol := dialAs(t, s, ca, "mallory"), dialAs(t, s, ca, "carol")
	if err := mallory.PutLayer(ctx, diffIDOf(public), 12, sendBytes([]byte("not the tar!"))); err == nil {
		t.Fatal("mallory's junk accepted")
	}
	pub := pushLayerImage(t, host, "public", public, diffIDOf(public))
	pa, err := carol.Pull(ctx, &ipc.PullReq{Ref: pub, PlainHTTP: true})
	if err != nil {
		t.Fatalf("the first pull of a public image after junk under its layer's digest: %v", err)
	}
	if err := startAndClose(carol, pa.Digest); err != nil {
		t.Errorf("carol starting the public image: %v", err)
	}
	if err := startAndClose(dialAs(t, s, ca, "dave"), pa.Digest); err != nil {
		t.Errorf("dave starting the public image carol pulled: %v", err)
	}
}

// TestSnapshotKeysApart: a client image and a pulled image whose digests
// share their hex (the client sent as its config bytes that name a pulled
// image as a manifest would) give their sandboxes' snapshots parents of
// their own, so neither snapshot can come back as the other's.
func TestSnapshotKeysApart(t *testing.T) {
	leakcheck.Check(t)
	s, ca := startServer(t, time.Minute)
	mallory, carol := dialAs(t, s, ca, "mallory"), dialAs(t, s, ca, "carol")
	ctx := context.Background()
	config := []byte(`{"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	pulled := image.ImageRecord{Digest: image.ConfigDigest(config), Config: []byte(`{"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}` + " ")}
	if err := s.store.PutImage(ctx, pulled); err != nil { // as a pull records it, by the same hex
		t.Fatal(err)
	}
	if _, err := mallory.PutImage(ctx, config); err != nil {
		t.Fatal(err)
	}
	if m, c := snapshotOf(t, mallory, pulled.Digest.String()).Parent, snapshotOf(t, carol, pulled.Digest.String()).Parent; m == c || !strings.HasPrefix(m, "client-") || !strings.HasPrefix(c, "image-") {
		t.Errorf("snapshots of the client image and of the pulled one stand on %q and %q", m, c)
	}
	if err := checkExcludes(make([]string, maxExcludes+1)); err == nil {
		t.Errorf("%d exclude patterns: accepted", maxExcludes+1)
	}
}

// TestPullHoldsNoLock: a pull from a registry that stalls on a layer's
// blob (one a client chose) holds nothing another client's upload of that
// layer waits for; the pull, once the blob comes, succeeds too.
func TestPullHoldsNoLock(t *testing.T) {
	leakcheck.Check(t)
	s, ca := startServer(t, time.Minute)
	mallory, alice := dialAs(t, s, ca, "mallory"), dialAs(t, s, ca, "alice")
	ctx := context.Background()
	layer := tarOf(t, &tar.Header{Name: "shared", Typeflag: tar.TypeReg})
	h, _ := v1.NewHash(diffIDOf(layer))
	asked, release := make(chan struct{}, 1), make(chan struct{})
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var stalling atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if stalling.Load() && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+diffIDOf(layer)) {
			select {
			case asked <- struct{}{}:
			default:
			}
			<-release
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ref := pushLayerImage(t, strings.TrimPrefix(srv.URL, "http://"), "stall", layer, diffIDOf(layer))
	stalling.Store(true)
	pulled := make(chan error, 1)
	go func() {
		_, err := mallory.Pull(ctx, &ipc.PullReq{Ref: ref, PlainHTTP: true})
		pulled <- err
	}()
	<-asked
	if err := alice.PutLayer(ctx, diffIDOf(layer), int64(len(layer)), sendBytes(layer)); err != nil {
		t.Errorf("alice's upload while a pull of the layer stalls: %v", err)
	}
	if !s.store.HasLayer(h) {
		t.Error("alice's upload is not in the store")
	}
	close(release)
	if err := <-pulled; err != nil {
		t.Errorf("the pull, once its blob came: %v", err)
	}
}
