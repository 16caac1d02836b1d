package helper

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/engine"
	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/snapshot"
	"github.com/ccsandbox/sandbox/internal/testutil/wirefake"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestWireGolden drives the client's side of the helper against a fake
// that answers from internal/ipc/testdata/wire.golden: each request of the
// helper's own messages must be byte for byte the golden one (see the
// public package's TestWireGolden for the agent's).
func TestWireGolden(t *testing.T) {
	rec, client := wirefake.Start(t)
	r := &Remote{helper: client, agent: client, done: make(chan struct{})}
	rec.Step("helper-openlink", func() { r.OpenLink("eth0") })
	rec.Step("helper-stats", func() { r.OOMKills() })
	rec.Step("helper-settimeout", func() { r.SetTimeout(1500 * time.Millisecond) })
	rec.Step("helper-snapshot", func() {
		h := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
		r.snapshot(context.Background(), "/cache", []string{"/tmp/**", "*.log"},
			snapshot.Parent{Key: "pk", Layers: []v1.Hash{h}, Config: []byte(`{"a":1}`)})
	})
	rec.Step("helper-wait", func() {
		ctx, cancel := context.WithCancel(context.Background())
		r.waitStop = cancel
		go r.wait(ctx)
		<-rec.Waiting
	})
	rec.Step("helper-close", func() { r.Close() })
	rec.Check(t, func(label string) bool { return strings.HasPrefix(label, "helper-") })
}

// TestSpecRoundTrip: what the public package describes reaches the
// helper's engine as it was, but for what does not travel (Unconfined, the
// logger) and the backend, which the helper looks up by name.
func TestSpecRoundTrip(t *testing.T) {
	backend, err := engine.LookupBackend("ns")
	if err != nil {
		t.Fatal(err)
	}
	in := engine.Spec{
		Layers: []string{"/l/1", "/l/2"}, Binds: []hv.Bind{{HostPath: "/srv", Path: "/mnt", Writable: true}, {HostPath: "/a", Path: "/b"}},
		Hostname: "h", MemoryMB: 512, CPUs: 1.5, PidsMax: 64, NoFile: 1024, DiskMB: 10, Network: true,
		Timeout: 90 * time.Second, Kernel: "/k", StateRoot: "/s", CacheDir: "/c", Backend: backend,
	}
	m := newRequest(in, true)
	var e ipc.Encoder
	m.Encode(&e)
	var back ipc.NewReq
	if err := back.Decode(ipc.NewDecoder(e.Bytes())); err != nil {
		t.Fatal(err)
	}
	out, err := engineSpec(&back, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Spec.WantFD || out.Backend.Name() != backend.Name() {
		t.Errorf("wantFD %v, backend %q", back.Spec.WantFD, out.Backend.Name())
	}
	out.Backend, in.Backend = nil, nil
	if !reflect.DeepEqual(out, in) {
		t.Errorf("the helper's spec\n  %+v\nwant\n  %+v", out, in)
	}
}

// TestHelperServesTable: the helper serves every message the table names
// it for itself.
func TestHelperServesTable(t *testing.T) {
	h := newHandler(nil)
	for _, d := range ipc.Messages() {
		if d.Peer&ipc.PeerHelper == 0 {
			continue
		}
		_, err := h.own.ServeCall(context.Background(), &ipc.Request{Type: d.Type, Payload: []byte{0xff}})
		if err != nil && strings.Contains(err.Error(), "unknown message type") {
			t.Errorf("%s: the helper does not serve it: %v", d.Name, err)
		}
	}
}

// TestNetSessionServesTable: a network helper's connection serves every
// message the table names the helper for itself.
func TestNetSessionServesTable(t *testing.T) {
	s := newSession(&NetServer{ledger: newLedger(1, Policy{}, 0)}, "c")
	for _, d := range ipc.Messages() {
		if d.Peer&ipc.PeerHelper == 0 {
			continue
		}
		_, err := s.own.ServeCall(context.Background(), &ipc.Request{Type: d.Type, Payload: []byte{0xff}})
		if err != nil && strings.Contains(err.Error(), "unknown message type") {
			t.Errorf("%s: the network helper does not serve it: %v", d.Name, err)
		}
	}
}
