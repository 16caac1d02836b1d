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
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/snapshot"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// layerOfSize returns a layer tar of one file of n bytes, different for
// each name.
func layerOfSize(t *testing.T, name string, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(n)}); err != nil {
		t.Fatal(err)
	}
	tw.Write(bytes.Repeat([]byte{'x'}, n))
	tw.Close()
	return b.Bytes()
}

// overStoreLimit reports whether err is the refusal of content over a
// client's maxStoreMB.
func overStoreLimit(err error) bool {
	return errors.Is(err, fs.ErrPermission) && err != nil && strings.Contains(err.Error(), "maxStoreMB")
}

// TestClientStoreLimit: what a client brings to the helper's store (the
// layers it sends, the configs of the images it records, its snapshots)
// is bounded by its maxStoreMB. A layer over the limit is refused before
// a byte of it is read, two uploads at once cannot both take the last
// room, what another client or a limitless one sends counts for it alone,
// and a snapshot is refused once the client's share is full.
func TestClientStoreLimit(t *testing.T) {
	leakcheck.Check(t)
	s, ca := startServer(t, time.Minute)
	s.ledger.policy = Policy{Clients: map[string]ClientLimits{"small": {MaxStoreMB: 1}, "racer": {MaxStoreMB: 1}, "full": {MaxStoreMB: 1}}}
	small, alice := dialAs(t, s, ca, "small"), dialAs(t, s, ca, "alice")
	ctx := context.Background()

	a, b := layerOfSize(t, "a", 700<<10), layerOfSize(t, "b", 700<<10)
	put := func(c *NetClient, l []byte) error {
		return c.PutLayer(ctx, diffIDOf(l), int64(len(l)), sendBytes(l))
	}
	if err := put(small, a); err != nil {
		t.Fatal(err)
	}
	sent := false
	err := small.PutLayer(ctx, diffIDOf(b), int64(len(b)), func(w io.Writer) error { sent = true; return nil })
	if !overStoreLimit(err) || sent {
		t.Errorf("a second 700 KiB layer for a client of 1 MB: %v (stream asked for: %t); want the limit named, nothing read", err, sent)
	}
	if err := put(alice, b); err != nil {
		t.Errorf("a client with no limit: %v", err)
	}
	if err := put(small, b); !overStoreLimit(err) {
		t.Errorf("the client showing it has alice's layer, over its limit: %v", err)
	}
	if err := put(small, layerOfSize(t, "c", 100<<10)); err != nil {
		t.Errorf("100 KiB within the room left: %v", err)
	}

	// Two uploads at once, each fitting alone, not both: the first holds
	// its booking while the second asks.
	inFirst, refused := make(chan struct{}), make(chan error, 1)
	racer := dialAs(t, s, ca, "racer")
	racer2 := dialAs(t, s, ca, "racer")
	first := make(chan error, 1)
	go func() {
		first <- racer.PutLayer(ctx, diffIDOf(a), int64(len(a)), func(w io.Writer) error {
			close(inFirst)
			if err := <-refused; !overStoreLimit(err) {
				return fmt.Errorf("the second upload, while the first is booked: %v", err)
			}
			_, err := w.Write(a)
			return err
		})
	}()
	<-inFirst
	refused <- racer2.PutLayer(ctx, diffIDOf(b), int64(len(b)), sendBytes(b))
	if err := <-first; err != nil {
		t.Error(err)
	}

	// A client whose share is exactly full: its next image record and
	// its snapshots are refused; its sandboxes run on.
	full := dialAs(t, s, ca, "full")
	half := layerOfSize(t, "half", 512<<10)
	if err := put(full, half); err != nil {
		t.Fatal(err)
	}
	use, err := s.storeUse("full")
	if err != nil || use != 512<<10+tarEntrySize {
		t.Fatalf("the share of a client with one layer of 512 KiB: %d, %v; want %d", use, err, 512<<10+tarEntrySize)
	}
	// config returns an image config of the layer half, n bytes long.
	config := func(n int64) []byte {
		head := fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%q]},"pad":"`, diffIDOf(half))
		return []byte(head + strings.Repeat("p", int(n)-len(head)-2) + `"}`)
	}
	exact := config(1<<20 - use)
	if int64(len(exact)) != 1<<20-use {
		t.Fatalf("config of %d bytes, want %d", len(exact), 1<<20-use)
	}
	img, err := full.PutImage(ctx, exact)
	if err != nil {
		t.Fatalf("an image whose config fills the share exactly: %v", err)
	}
	if _, err := full.PutImage(ctx, config(1<<20-use+1)); !overStoreLimit(err) {
		t.Errorf("one more image record: %v", err)
	}
	ni, _, err := full.Start(ctx, &ipc.RemoteNewReq{Digest: img.Digest})
	if err != nil {
		t.Fatal(err)
	}
	defer ni.Close()
	if _, err := ni.Snapshot(ctx, nil, nil, snapshot.Parent{}, nil); !overStoreLimit(err) {
		t.Errorf("a snapshot once the share is full: %v", err)
	}
	// A record a build wrote counts for good, once however often it is
	// written again (a rebuild without the cache).
	before, _ := s.storeUse("small")
	built, err := s.buildOf("small", &ipc.BuildReq{Dockerfile: []byte("FROM scratch\n")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.store.PutRecord(ctx, image.Record{Kind: "buildstep", Name: "k", Data: bytes.Repeat([]byte("<"), 3<<10)}); err != nil {
		t.Fatal(err)
	}
	size, err := s.store.RecordSize("buildstep", "k")
	if err != nil || size < 3<<10*4/3 { // the data's base64, at least
		t.Fatalf("the record's size: %d, %v", size, err)
	}
	for range 2 {
		built.Charge("buildstep", "k")
	}
	if after, err := s.storeUse("small"); err != nil || after != before+size {
		t.Errorf("a record of %d bytes charged twice: the share went from %d to %d (%v)", size, before, after, err)
	}
	if _, err := ipc.NewAgent(ni.Client()).Stat(ctx, "/half"); err != nil {
		t.Errorf("the sandbox after its snapshot was refused: %v", err)
	}
}

// publicSentFirst starts a helper whose client bob may keep 1 MB, and a
// registry with a public image of one 700 KiB layer, which client mallory
// has sent the helper first. It returns the helper, bob, and the image's
// reference.
func publicSentFirst(t *testing.T) (*NetServer, *NetClient, string) {
	t.Helper()
	s, ca := startServer(t, time.Minute)
	s.ledger.policy = Policy{Clients: map[string]ClientLimits{"bob": {MaxStoreMB: 1}}}
	mallory, bob := dialAs(t, s, ca, "mallory"), dialAs(t, s, ca, "bob")
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	public := layerOfSize(t, "public", 700<<10)
	ref := pushLayerImage(t, strings.TrimPrefix(reg.URL, "http://"), "base", public, diffIDOf(public))
	if err := mallory.PutLayer(context.Background(), diffIDOf(public), int64(len(public)), sendBytes(public)); err != nil {
		t.Fatal(err)
	}
	return s, bob, ref
}

// ownUploadFits checks that bob may still send 500 KiB of his own
// within his 1 MB.
func ownUploadFits(t *testing.T, bob *NetClient) {
	t.Helper()
	own := layerOfSize(t, "own", 500<<10)
	if err := bob.PutLayer(context.Background(), diffIDOf(own), int64(len(own)), sendBytes(own)); err != nil {
		t.Errorf("bob's own 500 KiB upload within his 1 MB: %v", err)
	}
}

// TestClientStorePulledLayer: what the helper pulled from a registry
// counts for no one, though another client sent the same layer first (and
// so it stays marked as a client's): a client whose pull was granted that
// layer was charged for it, so mallory, sending the layers of popular
// public images ahead of time, filled bob's share with his pulls and had
// his own uploads refused. mallory still pays for what she sent.
func TestClientStorePulledLayer(t *testing.T) {
	leakcheck.Check(t)
	s, bob, ref := publicSentFirst(t)
	ctx := context.Background()
	if _, err := bob.Pull(ctx, &ipc.PullReq{Ref: ref, PlainHTTP: true}); err != nil {
		t.Fatal(err)
	}
	use, err := s.storeUse("bob")
	t.Logf("bob's share after pulling a public image: %d bytes (%v)", use, err)
	if use != 0 {
		t.Errorf("bob is charged %d bytes for a layer he pulled from a registry (mallory uploaded it first)", use)
	}
	ownUploadFits(t, bob)
	if use, err := s.storeUse("mallory"); err != nil || use < 700<<10 {
		t.Errorf("mallory's share after sending the layer of 700 KiB: %d bytes, %v", use, err)
	}
}

// TestClientStoreBuildOnPulledLayer: as TestClientStorePulledLayer, for a
// build whose result holds the pulled base's layers: the build granted
// every layer of its result as the client's own, so bob's "FROM public"
// was charged mallory's upload. The builder here does what the SDK's
// does for that Dockerfile: pull the base through the helper, return it.
func TestClientStoreBuildOnPulledLayer(t *testing.T) {
	leakcheck.Check(t)
	registered := builder
	t.Cleanup(func() { builder = registered })
	s, bob, ref := publicSentFirst(t)
	ctx := context.Background()
	// What the SDK's builder does for "FROM <public>" alone: pull the base
	// (through b.Pull, the helper's pull for bob), and return it.
	SetBuilder(func(ctx context.Context, b *Build) (*snapshot.Info, error) {
		h, err := b.Pull(ctx, ref, v1.Platform{})
		if err != nil {
			return nil, err
		}
		rec, err := s.store.Image(h)
		if err != nil {
			return nil, err
		}
		return &snapshot.Info{Key: "image-" + h.Hex, Layers: rec.Layers, Config: rec.Config, Created: time.Now()}, nil
	})
	if _, err := bob.Build(ctx, &ipc.BuildReq{Dockerfile: []byte("FROM " + ref + "\n"), Pull: ipc.PullReq{PlainHTTP: true}}, func(ipc.BuildEvent) {}); err != nil {
		t.Fatal(err)
	}
	if use, err := s.storeUse("bob"); err != nil || use > 4096 {
		t.Errorf("bob's share after a build FROM a public image (mallory sent its layer first): %d bytes, %v; want the result's config alone", use, err)
	}
	ownUploadFits(t, bob)
}
