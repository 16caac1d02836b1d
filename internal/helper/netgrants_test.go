package helper

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/snapshot"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

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
	if _, _, err := bob.Start(ctx, &ipc.RemoteNewReq{Digest: img.Digest}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("bob starting alice's image by digest: %v, want fs.ErrNotExist", err)
	}
	if err := bob.PutLayer(ctx, diffIDOf(secret), int64(len(forged)), sendBytes(forged)); err == nil {
		t.Error("bob's forged bytes for a layer the helper holds: accepted")
	}
	if m, _ := bob.MissingLayers(ctx, []string{diffIDOf(secret), diffIDOf(later)}); len(m) != 2 {
		t.Errorf("after bob's forgery and early garbage, bob's MissingLayers: %v; want both missing", m)
	}

	ni, _, err := alice.Start(ctx, &ipc.RemoteNewReq{Digest: img.Digest})
	if err != nil {
		t.Fatal(err)
	}
	defer ni.Close()
	info, err := ni.Snapshot(ctx, nil, nil, snapshot.Parent{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := SnapshotImage(info)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := bob.Start(ctx, &ipc.RemoteNewReq{Digest: rec.Digest.String()}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("bob starting alice's snapshot by digest: %v, want fs.ErrNotExist", err)
	}
	snapNI, _, err := alice.Start(ctx, &ipc.RemoteNewReq{Digest: rec.Digest.String()})
	if err != nil {
		t.Errorf("alice starting her snapshot: %v", err)
	} else {
		snapNI.Close()
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
	bni, _, err := bob.Start(ctx, &ipc.RemoteNewReq{Digest: img.Digest})
	if err != nil {
		t.Errorf("bob starting the image he recorded: %v", err)
	} else {
		bni.Close()
	}
}
