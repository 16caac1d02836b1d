package sandbox

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// TestRemoteByContent: what exists only on this machine (a Dockerfile
// built here, an image loaded from a layout, a snapshot) runs on a network
// helper with a store of its own, which is sent the layers it lacks and
// nothing its client sent already: the same client on another connection
// sends no layer of the build, nor of the loaded base image the build
// stood on. Another client sends each layer once (content a client brings
// is its own until another shows it has the same bytes). A snapshot of
// the host image cannot go: its base is this host.
func TestRemoteByContent(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	p := newTestPKI(t)
	s := startNetHelper(t, p, "-store", t.TempDir())
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f.txt"), []byte("from the context\n"), 0o644)
	b, err := buildDockerfile(t, "FROM busybox\nRUN echo built > /built && mkdir /d && ln -s /built /d/link\nCOPY f.txt /f.txt\n", dir)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := DialRemote(ctx, s.Addr().String(), p.client("alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	inst, err := alice.New(ctx, b.snap)
	if err != nil {
		t.Fatal(err)
	}
	out, err := inst.Command("cat", "/built", "/f.txt", "/d/link").Output()
	if want := "built\nfrom the context\nbuilt\n"; err != nil || string(out) != want {
		t.Errorf("the built files on the helper: %q, %v; want %q", out, err, want)
	}
	inst.Close()
	sent := s.LayersReceived()
	if layers := len(b.snap.info.Layers); layers < 2 || sent != uint64(layers) {
		t.Errorf("the helper was sent %d layers of a build of %d", sent, layers)
	}

	// alice again, on a connection of her own: nothing travels.
	alice2, err := DialRemote(ctx, s.Addr().String(), p.client("alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer alice2.Close()
	again, err := alice2.New(ctx, b.snap)
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, again)
	again.Close()
	base, err := alice2.New(ctx, busyboxImage(t))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := base.Command("test", "!", "-e", "/built").CombinedOutput(); err != nil {
		t.Errorf("the base image on the helper has the build's file: %q, %v", out, err)
	}
	base.Close()
	if n := s.LayersReceived(); n != sent {
		t.Errorf("alice was made to send %d more layers, of content she had sent", n-sent)
	}
	// bob, another client, shows he has the layers by sending them, once.
	bob, err := DialRemote(ctx, s.Addr().String(), p.client("bob"))
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	for range 2 {
		inst, err := bob.New(ctx, b.snap)
		if err != nil {
			t.Fatal(err)
		}
		inst.Close()
	}
	if n := s.LayersReceived(); n != 2*sent {
		t.Errorf("bob sent %d layers for a build of %d", n-sent, sent)
	}

	host := hostInstance(t)
	snap, err := host.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if _, err := alice.New(ctx, snap); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("a snapshot of the host image on a helper: %v, want errors.ErrUnsupported", err)
	}
}

// freezingProxy forwards TCP connections to a helper until frozen; from
// then on it swallows what clients send (a helper that hangs), telling
// swallowed about it.
type freezingProxy struct {
	ln        net.Listener
	frozen    atomic.Bool
	swallowed chan struct{} // one value per swallowed read, dropped when full
	mu        sync.Mutex
	conns     []net.Conn
	wg        sync.WaitGroup
}

func startFreezingProxy(t *testing.T, target string) *freezingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, swallowed: make(chan struct{}, 1)}
	pipe := func(dst, src net.Conn, fromClient bool) {
		defer p.wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 && fromClient && p.frozen.Load() {
				select {
				case p.swallowed <- struct{}{}:
				default:
				}
			} else if n > 0 {
				dst.Write(buf[:n])
			}
			if err != nil {
				dst.Close()
				return
			}
		}
	}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			p.wg.Add(2)
			go pipe(u, c, true)
			go pipe(c, u, false)
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// TestRemoteSendFollowsItsContext: two Remote.New of one local image
// share one transfer; when the helper hangs, the second returns when its
// own context ends, not when the first caller's does.
func TestRemoteSendFollowsItsContext(t *testing.T) {
	leakcheck.Check(t)
	p := newTestPKI(t)
	s := startNetHelper(t, p, "-store", t.TempDir())
	px := startFreezingProxy(t, s.Addr().String())
	r, err := DialRemote(context.Background(), px.ln.Addr().String(), p.client("alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	img := busyboxImage(t)
	px.frozen.Store(true)
	actx, acancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := r.New(actx, img)
		first <- err
	}()
	<-px.swallowed // the first transfer is under way, at the helper
	bctx, bcancel := context.WithCancel(context.Background())
	bcancel()
	if _, err := r.New(bctx, img); !errors.Is(err, context.Canceled) {
		t.Errorf("the second New, its context ended: %v, want context.Canceled", err)
	}
	acancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("the first New, its context ended: %v", err)
	}
}
