package helper

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestClientImageApartFromPulls: an image a client records by content
// can never take the place of one the helper pulled, even when the bytes
// it sends as a config are those of the pulled image's manifest (whose
// digest names the pulled image); and a config larger than the helper
// takes is refused before it is parsed.
func TestClientImageApartFromPulls(t *testing.T) {
	leakcheck.Check(t)
	s, ca := startServer(t, time.Minute)
	mallory, bob := dialAs(t, s, ca, "mallory"), dialAs(t, s, ca, "bob")
	ctx := context.Background()
	manifest := []byte(`{"schemaVersion":2,"rootfs":{"type":"layers","diff_ids":[]}}`)
	pulled := image.ImageRecord{Digest: image.ConfigDigest(manifest), Config: []byte(`{"os":"linux","config":{"Env":["PULLED=1"]}}`)}
	if err := s.store.PutImage(ctx, pulled); err != nil { // as a pull records it
		t.Fatal(err)
	}
	if _, err := mallory.PutImage(ctx, manifest); err != nil {
		t.Fatalf("a config with no layers: %v", err)
	}
	if rec, err := s.store.Image(pulled.Digest); err != nil || !bytes.Equal(rec.Config, pulled.Config) {
		t.Errorf("the pulled image's record after mallory's: %s, %v", rec.Config, err)
	}
	ni, config, err := bob.Start(ctx, &ipc.RemoteNewReq{Digest: pulled.Digest.String()})
	if err != nil {
		t.Fatal(err)
	}
	ni.Close()
	if !bytes.Equal(config, pulled.Config) {
		t.Errorf("bob's sandbox of the pulled image got the config %s", config)
	}

	big := append([]byte(`{"rootfs":{"type":"layers","diff_ids":[]},"history":[`), bytes.Repeat([]byte("{},"), maxImageConfig/3)...)
	big = append(big, "{}]}"...)
	if _, err := mallory.PutImage(ctx, big); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("a config of %d bytes: %v", len(big), err)
	}
}

// TestPutLayerStallAndBomb: a client that announces a layer and stalls
// half way holds nothing another client's upload of the same layer waits
// for; and a compressed stream sent as a layer's tar (under the digest of
// what it expands to) is refused, not expanded into the store.
func TestPutLayerStallAndBomb(t *testing.T) {
	leakcheck.Check(t)
	s, ca := startServer(t, time.Minute)
	mallory, bob := dialAs(t, s, ca, "mallory"), dialAs(t, s, ca, "bob")
	ctx := context.Background()
	good := tarOf(t, &tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}, &tar.Header{Name: "etc/good", Typeflag: tar.TypeReg})

	release := make(chan struct{})
	stalled := make(chan error, 1)
	go func() {
		stalled <- mallory.PutLayer(ctx, diffIDOf(good), 1<<30, func(w io.Writer) error {
			if _, err := w.Write(good[:512]); err != nil {
				return err
			}
			<-release
			return io.ErrClosedPipe
		})
	}()
	// Wait until the helper is at work on mallory's stream: its store
	// has a temporary directory for it.
	for deadline := time.Now().Add(time.Minute); len(storeTmpNow(t, s)) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the helper never began on mallory's stream")
		}
	}
	if err := bob.PutLayer(ctx, diffIDOf(good), int64(len(good)), sendBytes(good)); err != nil {
		t.Errorf("bob's upload while mallory stalls on the same layer: %v", err)
	}
	close(release)
	if err := <-stalled; err == nil {
		t.Error("mallory's stalled upload succeeded")
	}

	bomb := tarOf(t, &tar.Header{Name: "big", Typeflag: tar.TypeReg})
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(bomb)
	zw.Close()
	if err := mallory.PutLayer(ctx, diffIDOf(bomb), int64(z.Len()), sendBytes(z.Bytes())); err == nil {
		t.Error("a gzip stream under its tar's digest: accepted")
	}
	if h, _ := v1.NewHash(diffIDOf(bomb)); s.store.HasLayer(h) {
		t.Error("the store has the layer a gzip stream expanded to")
	}
}

// storeTmpNow lists the helper's store's temporary entries.
func storeTmpNow(t *testing.T, s *NetServer) []string {
	t.Helper()
	es, _ := os.ReadDir(filepath.Join(s.root, "tmp"))
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestPutLayerPaceEnds: the helper ends a layer stream that brings too
// little in a window, whether it stalls or trickles a byte at a time,
// and removes what it had unpacked, while the client still holds the
// stream open; and it refuses more uploads at once than a client may
// have.
func TestPutLayerPaceEnds(t *testing.T) {
	leakcheck.Check(t)
	s, ca := startServer(t, time.Minute)
	s.uploadWindow = 200 * time.Millisecond
	mallory := dialAs(t, s, ca, "mallory")
	var big bytes.Buffer // long enough to trickle for longer than the test waits
	tw := tar.NewWriter(&big)
	tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 16})
	tw.Write(make([]byte, 1<<16))
	tw.Close()
	layer := big.Bytes()
	for _, trickle := range []bool{false, true} {
		gaveUp := false
		err := mallory.PutLayer(context.Background(), diffIDOf(layer), int64(len(layer)), func(w io.Writer) error {
			if _, err := w.Write(layer[:512]); err != nil {
				return err
			}
			// Send too little: first the helper is at work on the stream
			// (its temporary directory is there), then it gives up (gone).
			deadline := time.Now().Add(time.Minute)
			for len(storeTmpNow(t, s)) == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			sent := 512
			for len(storeTmpNow(t, s)) != 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
				if trickle && sent < len(layer)-1 {
					w.Write(layer[sent : sent+1])
					sent++
				}
			}
			gaveUp = len(storeTmpNow(t, s)) == 0
			return io.ErrClosedPipe
		})
		if !gaveUp {
			t.Errorf("trickle %v: the helper did not end a slow upload", trickle)
		}
		if err == nil {
			t.Errorf("trickle %v: a slow upload succeeded", trickle)
		}
	}

	// Uploads beyond a client's share are refused while the share is busy
	// (on a helper of the usual pace, so that the share's stay).
	s, ca = startServer(t, time.Minute)
	mallory = dialAs(t, s, ca, "mallory")
	release := make(chan struct{})
	started := make(chan struct{}, maxUploadsPerClient)
	errs := make(chan error, maxUploadsPerClient)
	for range maxUploadsPerClient {
		go func() {
			errs <- mallory.PutLayer(context.Background(), diffIDOf(layer), int64(len(layer)), func(w io.Writer) error {
				started <- struct{}{}
				<-release
				_, err := w.Write(layer)
				return err
			})
		}()
	}
	for range maxUploadsPerClient {
		<-started
	}
	if err := mallory.PutLayer(context.Background(), diffIDOf(layer), int64(len(layer)), sendBytes(layer)); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("an upload beyond the client's share: %v, want fs.ErrPermission", err)
	}
	bob := dialAs(t, s, ca, "bob")
	if err := bob.PutLayer(context.Background(), diffIDOf(layer), int64(len(layer)), sendBytes(layer)); err != nil {
		t.Errorf("another client's upload meanwhile: %v", err)
	}
	close(release)
	for range maxUploadsPerClient {
		if err := <-errs; err != nil {
			t.Errorf("an upload within the share: %v", err)
		}
	}
}
