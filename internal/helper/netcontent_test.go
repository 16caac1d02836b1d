package helper

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/snapshot"
	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// tarOf makes a layer tar of hdrs, each regular file holding its name.
func tarOf(t *testing.T, hdrs ...*tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hdrs {
		var body []byte
		if h.Typeflag == tar.TypeReg {
			body = []byte(h.Name)
			h.Size = int64(len(body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func diffIDOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func sendBytes(b []byte) func(io.Writer) error {
	return func(w io.Writer) error { _, err := w.Write(b); return err }
}

// storeTmp lists the helper's store's temporary entries, waiting (up to
// a minute) for the handlers of streams the client has already left to
// remove theirs.
func storeTmp(t *testing.T, s *NetServer) []string {
	t.Helper()
	var names []string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		es, err := os.ReadDir(filepath.Join(s.root, "tmp"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		names = names[:0]
		for _, e := range es {
			names = append(names, e.Name())
		}
		if len(names) == 0 || time.Now().After(deadline) {
			return names
		}
	}
}

// TestPutLayerHostile plays a hostile client of images by content: a tar
// that is not what its digest says, a tar that climbs out with ".." or
// through a symlink it made, a stream cut short, a size no layer may
// have, an image naming layers the helper lacks. Each is refused with an
// error, the store adds nothing and keeps no temporary files, nothing
// lands outside it, and the helper goes on serving: a good layer sent by
// four clients at once ends as one layer.
func TestPutLayerHostile(t *testing.T) {
	leakcheck.Check(t)
	s, ca := startServer(t, time.Minute)
	alice := dialAs(t, s, ca, "alice")
	ctx := context.Background()
	canary := t.TempDir()
	layersBefore, _ := s.store.Layers()

	good := tarOf(t, &tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}, &tar.Header{Name: "etc/good", Typeflag: tar.TypeReg})
	dotdot := tarOf(t, &tar.Header{Name: "../../../" + strings.TrimPrefix(canary, "/") + "/dotdot", Typeflag: tar.TypeReg})
	linkOut := tarOf(t, &tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: canary, Mode: 0o777},
		&tar.Header{Name: "l/through", Typeflag: tar.TypeReg})
	hardOut := tarOf(t, &tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../../../../../etc/passwd"})
	for _, c := range []struct {
		name   string
		diffID string
		size   int64
		write  func(io.Writer) error
	}{
		{"another digest", diffIDOf([]byte("something else")), int64(len(good)), sendBytes(good)},
		{"dot-dot", diffIDOf(dotdot), int64(len(dotdot)), sendBytes(dotdot)},
		{"symlink out", diffIDOf(linkOut), int64(len(linkOut)), sendBytes(linkOut)},
		{"hard link out", diffIDOf(hardOut), int64(len(hardOut)), sendBytes(hardOut)},
		{"cut short", diffIDOf(good), int64(len(good)), sendBytes(good[:len(good)/2])},
		{"not a tar", diffIDOf(bytes.Repeat([]byte{0xff}, 4096)), 4096, sendBytes(bytes.Repeat([]byte{0xff}, 4096))},
		{"not a digest", "md5:0123", int64(len(good)), sendBytes(good)},
		{"larger than a layer may be", diffIDOf(good), 64 << 30, func(io.Writer) error { return errors.New("the stream was asked for") }},
	} {
		err := alice.PutLayer(ctx, c.diffID, c.size, c.write)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
		} else if strings.Contains(err.Error(), "was asked for") {
			t.Errorf("%s: the helper asked for the stream: %v", c.name, err)
		}
		if h, err := v1.NewHash(c.diffID); err == nil && s.store.HasLayer(h) {
			t.Errorf("%s: the store has the layer", c.name)
		}
	}
	if left := storeTmp(t, s); len(left) != 0 {
		t.Errorf("temporary entries left in the store: %v", left)
	}
	if es, _ := os.ReadDir(canary); len(es) != 0 {
		t.Errorf("a layer wrote outside the store: %v", es)
	}
	if after, _ := s.store.Layers(); len(after) != len(layersBefore) {
		t.Errorf("the store went from %d layers to %d", len(layersBefore), len(after))
	}

	missing := tarOf(t, &tar.Header{Name: "never-sent", Typeflag: tar.TypeReg})
	config := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%q]}}`, diffIDOf(missing))
	if _, err := alice.PutImage(ctx, config); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an image of a layer the helper lacks: %v, want fs.ErrNotExist", err)
	}
	if _, err := alice.PutImage(ctx, []byte("{not json")); err == nil {
		t.Error("an image of a config that does not parse: accepted")
	}
	if _, err := alice.MissingLayers(ctx, []string{"sha256:zz"}); err == nil {
		t.Error("MissingLayers of a name that is no digest: accepted")
	}

	// Six clients at once send the same diffID: the even ones the good
	// tar, the odd ones another of the same length under its name.
	bad := tarOf(t, &tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}, &tar.Header{Name: "etc/evil", Typeflag: tar.TypeReg})
	var wg sync.WaitGroup
	errs := make([]error, 6)
	clients := make([]*NetClient, len(errs))
	for i := range errs {
		c := dialAs(t, s, ca, fmt.Sprintf("client%d", i))
		clients[i] = c
		body := good
		if i%2 == 1 {
			body = bad
		}
		wg.Go(func() { errs[i] = c.PutLayer(ctx, diffIDOf(good), int64(len(body)), sendBytes(body)) })
	}
	wg.Wait()
	for i, err := range errs {
		if i%2 == 0 && err != nil {
			t.Errorf("client %d sending the good layer: %v", i, err)
		}
		if i%2 == 1 && err == nil {
			t.Errorf("client %d sending another tar under the good layer's digest: accepted", i)
		}
	}
	h, _ := v1.NewHash(diffIDOf(good))
	if b, err := os.ReadFile(filepath.Join(s.store.LayerDir(h), "etc", "good")); err != nil || string(b) != "etc/good" {
		t.Errorf("the good layer in the store: %q, %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(s.store.LayerDir(h), "etc", "evil")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the store's layer has the other tar's file: %v", err)
	}
	if m, err := clients[0].MissingLayers(ctx, []string{diffIDOf(good), diffIDOf(missing)}); err != nil || len(m) != 1 || m[0] != diffIDOf(missing) {
		t.Errorf("MissingLayers after the good layer: %v, %v", m, err)
	}
	config = fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%q]}}`, diffIDOf(good))
	a, err := clients[0].PutImage(ctx, config)
	if err != nil || a.Digest != diffIDOf(config) || len(a.Layers) != 1 {
		t.Errorf("recording an image of the good layer: %+v, %v", a, err)
	}
	if after, _ := s.store.Layers(); len(after) != len(layersBefore)+1 {
		t.Errorf("the store went from %d layers to %d, want one more", len(layersBefore), len(after))
	}
	if left := storeTmp(t, s); len(left) != 0 {
		t.Errorf("temporary entries left in the store: %v", left)
	}
}

// TestPutLayerHelperCloses: a helper that closes while a layer streams in
// ends the stream, removes what it had unpacked and returns.
func TestPutLayerHelperCloses(t *testing.T) {
	leakcheck.Check(t)
	s, ca := startServer(t, time.Minute)
	alice := dialAs(t, s, ca, "alice")
	layer := tarOf(t, &tar.Header{Name: "a", Typeflag: tar.TypeReg}, &tar.Header{Name: "b", Typeflag: tar.TypeReg})
	half, closed := make(chan struct{}), make(chan struct{})
	sent := make(chan error, 1)
	go func() {
		sent <- alice.PutLayer(context.Background(), diffIDOf(layer), int64(len(layer)), func(w io.Writer) error {
			if _, err := w.Write(layer[:1024]); err != nil {
				return err
			}
			close(half)
			<-closed // the rest only once the helper's Close has returned
			_, err := w.Write(layer[1024:])
			return err
		})
	}()
	<-half
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	close(closed)
	if err := <-sent; err == nil {
		t.Error("a layer streaming while the helper closed: no error")
	}
	if left := storeTmp(t, s); len(left) != 0 {
		t.Errorf("temporary entries left in the store: %v", left)
	}
	if h, _ := v1.NewHash(diffIDOf(layer)); s.store.HasLayer(h) {
		t.Error("the store has the layer cut short")
	}
}

// TestNetSnapshotIgnoresClientPaths: a client's MsgInstanceSnapshot names
// a store directory of the helper's host and a parent of its own making
// (layers of the helper's store, a config); the helper reads neither: the
// snapshot goes into its own store on top of the sandbox's own image, and
// the named directory stays empty.
func TestNetSnapshotIgnoresClientPaths(t *testing.T) {
	leakcheck.Check(t)
	s, ca := startServer(t, time.Minute)
	alice := dialAs(t, s, ca, "alice")
	ctx := context.Background()
	ni, _, err := alice.Start(ctx, &ipc.RemoteNewReq{}) // scratch
	if err != nil {
		t.Fatal(err)
	}
	defer ni.Close()
	elsewhere := t.TempDir()
	layer := tarOf(t, &tar.Header{Name: "planted", Typeflag: tar.TypeReg})
	if err := alice.PutLayer(ctx, diffIDOf(layer), int64(len(layer)), sendBytes(layer)); err != nil {
		t.Fatal(err)
	}
	parent := fmt.Appendf(nil, `{"Key":"mine","Layers":[%q],"Config":{"os":"linux"}}`, diffIDOf(layer))
	var a ipc.SnapshotAns
	err = ni.agent.Do(ctx, ipc.MsgInstanceSnapshot, &ipc.SnapshotReq{Options: ipc.SnapshotOptions{CacheDir: elsewhere}, Parent: parent}, &a)
	if err != nil {
		t.Fatal(err)
	}
	var info snapshot.Info
	if err := json.Unmarshal(a.Info, &info); err != nil {
		t.Fatal(err)
	}
	if info.Parent != "scratch" || slices.Contains(info.Layers, v1.Hash{Algorithm: "sha256", Hex: strings.TrimPrefix(diffIDOf(layer), "sha256:")}) {
		t.Errorf("the snapshot stands on %q with layers %v: the client's parent was used", info.Parent, info.Layers)
	}
	if _, err := snapshot.Get(s.store, info.Key); err != nil {
		t.Errorf("the snapshot is not in the helper's store: %v", err)
	}
	if es, _ := os.ReadDir(elsewhere); len(es) != 0 {
		t.Errorf("the helper wrote into the directory the client named: %v", es)
	}
}
