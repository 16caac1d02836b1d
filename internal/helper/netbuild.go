package helper

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ccsandbox/sandbox/internal/dockerfile"
	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/snapshot"
)

// Builds on the network helper (MsgRemoteBuild). The build's steps are
// sandboxes of the SDK, which this package cannot start itself (the SDK
// imports it): the SDK's root package hands it its builder (SetBuilder),
// and a cc-helper built without the SDK answers that it cannot build.
//
// A build is its client's as what it sends by content is: it pulls the
// images FROM names as the client's pulls do (a layer another client
// brought is fetched and checked, never taken from the store); every
// layer it makes is marked private before it enters the store, and the
// snapshot it leaves is the client's alone; its step cache and its cache
// mounts are the client's own (a key made in another client's build,
// even of the same instructions, is never looked up, so neither a
// secret's effect nor a cache mount's content crosses). It has no network,
// counts as one of the client's sandboxes (against a memory limit, with
// buildMemoryMB or the limit if lower, each step's sandbox so limited)
// and runs one step at a time.

// A Build is one build a network helper runs for a client, as its Builder
// gets it.
type Build struct {
	Store         *image.Store      // the helper's store: the build's layers, records and result go there
	Dockerfile    []byte            // the Dockerfile, at most maxDockerfile bytes
	Context       string            // the context's directory (a layer of Store); "": none
	Args          map[string]string // build arguments
	Target        string            // the stage to build; "": the last
	NoCache       bool              // run every step again
	NoCacheStages []string          // run the steps of these stages again
	Epoch         time.Time         // SOURCE_DATE_EPOCH; zero: none
	Secrets       map[string][]byte // values RUN --mount=type=secret reads, by id
	Platform      v1.Platform       // zero: linux and the helper's architecture
	// Scope keys the build's step cache and cache mounts: one client's
	// builds share them, no other client's.
	Scope string
	// Pull pulls the image ref names, for the build's client, into Store
	// and returns its digest there.
	Pull func(ctx context.Context, ref string, platform v1.Platform) (v1.Hash, error)
	// BeforeAdd is called with each layer the build makes, before it
	// enters Store; an error stops the build. (It refuses once the
	// client's share is full: the layer that fills it is the last, and
	// may pass the share by its size.)
	BeforeAdd func(v1.Hash) error
	// Charge is called with the kind and name of each record the build
	// has written in Store beside its layers (a step's snapshot and cache
	// records, each with its config); an error stops the build.
	Charge   func(kind, name string) error
	MemoryMB uint64                 // each step's sandbox's memory limit; 0: none
	PidsMax  int64                  // each step's sandbox's pids limit; 0: none
	Progress func(dockerfile.Event) // the build's events, one at a time
	Log      *slog.Logger
}

// A Builder runs a build and returns the snapshot it made, in b.Store.
type Builder func(ctx context.Context, b *Build) (*snapshot.Info, error)

// builder is the SDK's; nil in a helper built without it.
var builder Builder

// SetBuilder gives network helpers the SDK's builder. The SDK's root
// package calls it as it initialises.
func SetBuilder(b Builder) { builder = b }

// buildMemoryMB is the memory limit of a build's steps for a client whose
// policy limits its memory, and what the build counts for against it.
const buildMemoryMB = 2048

// maxDockerfile bounds a Dockerfile a client has the helper build.
const maxDockerfile = 1 << 20

// cut returns s cut to at most n bytes.
func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// maxBuildOutput bounds a line of a step's output in a build event.
const maxBuildOutput = 16 << 10

// build answers MsgRemoteBuild for client: once the success answer is
// out, the build runs, its events go out as frames as they happen, and a
// last frame carries the snapshot or the build's error. The client
// hanging up, and the helper's Close, end the build.
func (s *NetServer) build(client string, req *ipc.Request, m *ipc.BuildReq) (ipc.Empty, error) {
	if builder == nil {
		return ipc.Empty{}, &ipc.IPCError{Code: ipc.ErrCodeUnsupported, Message: "this helper cannot build: its cc-helper was built without the SDK's builder"}
	}
	b, err := s.buildOf(client, m)
	if err != nil {
		return ipc.Empty{}, err
	}
	lease := &image.Lease{}
	if m.Context != "" {
		hs, err := diffIDs([]string{m.Context})
		if err != nil {
			return ipc.Empty{}, err
		}
		if !s.usable(client, hs[0]) {
			return ipc.Empty{}, &ipc.IPCError{Code: ipc.ErrCodeNotExist,
				Message: fmt.Sprintf("build context %s is not in the helper's store: send it first (MsgRemotePutLayer)", m.Context)}
		}
		if lease, err = s.store.Lease(req.Context(), hs); err != nil {
			return ipc.Empty{}, err
		}
		b.Context = s.store.LayerDir(hs[0])
	}
	lim := s.ledger.limits(client)
	if lim.MaxMemoryMB > 0 {
		b.MemoryMB = uint64(min(buildMemoryMB, lim.MaxMemoryMB))
	}
	b.PidsMax = lim.pids(0)
	release, err := s.ledger.reserve(client, int64(b.MemoryMB))
	if err != nil {
		lease.Release()
		return ipc.Empty{}, err
	}
	unbook, err := s.storeRoom(client, 1)
	if err != nil {
		release()
		lease.Release()
		return ipc.Empty{}, err
	}
	req.HijackWith(func(conn net.Conn) {
		streamUserTimeout(conn) // the client may read the events slowly (see streamUserTimeout)
		defer release()
		defer unbook()
		defer lease.Release()
		ctx, cancel := context.WithCancel(s.ctx)
		defer cancel()
		hungUp := make(chan struct{})
		go func() { // the client sends nothing more: a read ends when it hangs up
			defer close(hungUp)
			io.Copy(io.Discard, conn)
			cancel()
		}()
		defer func() { conn.Close(); <-hungUp }()
		stop := context.AfterFunc(ctx, func() { conn.Close() }) // so that a client that reads nothing holds no write
		defer stop()
		b.Progress = func(ev dockerfile.Event) {
			ev.Output = cut(ev.Output, maxBuildOutput)
			ev.Instruction = cut(ev.Instruction, maxBuildOutput)
			ev.Stage = cut(ev.Stage, maxBuildOutput/4)
			ipc.WriteBuildEvent(conn, &ipc.BuildEvent{Step: uint32(ev.Step), Total: uint32(ev.Total), Stage: ev.Stage,
				Instruction: ev.Instruction, Cached: ev.Cached, Done: ev.Done, Output: ev.Output})
		}
		info, err := builder(ctx, b)
		var ans ipc.SnapshotAns
		if err == nil {
			ans, err = s.ownBuild(ctx, client, info)
		}
		if err != nil {
			s.log.Info("build failed", "client", client, "err", err)
		}
		ipc.WriteBuildEnd(conn, &ans, err)
	})
	return ipc.Empty{}, nil
}

// buildOf checks m and makes the Build it asks client's builder for,
// but for what depends on its context (Context, MemoryMB, Progress).
func (s *NetServer) buildOf(client string, m *ipc.BuildReq) (*Build, error) {
	bad := func(format string, args ...any) (*Build, error) {
		return nil, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: fmt.Sprintf(format, args...)}
	}
	if len(m.Dockerfile) > maxDockerfile {
		return bad("a Dockerfile of %d bytes, more than the %d this helper builds", len(m.Dockerfile), maxDockerfile)
	}
	b := &Build{Store: s.store, Dockerfile: m.Dockerfile, Args: map[string]string{}, Target: m.Target,
		NoCache: m.NoCache, NoCacheStages: m.NoCacheStages, Secrets: map[string][]byte{},
		Scope: clientKey(client), Log: s.log}
	for _, a := range m.Args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return bad("build argument %q: want NAME=value", a)
		}
		b.Args[k] = v
	}
	for _, sec := range m.Secrets {
		if sec.ID == "" {
			return bad("a build secret without an id")
		}
		b.Secrets[sec.ID] = sec.Value
	}
	if m.HasEpoch {
		if m.Epoch < 0 {
			return bad("SOURCE_DATE_EPOCH %d: before 1970", m.Epoch)
		}
		b.Epoch = time.Unix(m.Epoch, 0)
	}
	if m.Pull.Platform != "" {
		p, err := image.ParsePlatform(m.Pull.Platform)
		if err != nil {
			return bad("%v", err)
		}
		b.Platform = p
	}
	pull := m.Pull
	b.Pull = func(ctx context.Context, ref string, platform v1.Platform) (v1.Hash, error) {
		req := ipc.PullReq{Ref: ref, Policy: pull.Policy, PlainHTTP: pull.PlainHTTP}
		if platform.OS != "" {
			req.Platform = image.FormatPlatform(platform)
		}
		a, err := s.pull(ctx, client, &req)
		if err != nil {
			return v1.Hash{}, err
		}
		return v1.NewHash(a.Digest)
	}
	// Every layer the build adds is its client's, whether the result keeps
	// it or not (a stage the result leaves out, a build that fails), and
	// counts in its share of the store; once the share is full the build
	// stops (see storeRoom).
	b.BeforeAdd = func(h v1.Hash) error {
		if err := s.checkRoom(client, 1); err != nil {
			return err
		}
		if err := s.markPrivate(s.ctx, h); err != nil {
			return err
		}
		return s.grant(s.ctx, client, h)
	}
	// A record the build writes is its client's too, and counts in its
	// share for good (a charge record named after it: written again, by
	// a build without its cache, it counts once); once the share is full
	// the build stops, the record that filled it counted.
	b.Charge = func(kind, name string) error {
		n, err := s.store.RecordSize(kind, name) // what it takes, whatever its JSON made of it
		if err != nil {
			return err
		}
		sum := sha256.Sum256([]byte(kind + "/" + name))
		charge := clientKey(client) + "-" + hex.EncodeToString(sum[:16])
		if err := s.store.PutRecord(s.ctx, image.Record{Kind: kindCharge, Name: charge, Data: []byte(strconv.FormatInt(n, 10))}); err != nil {
			return err
		}
		return s.checkRoom(client, 0)
	}
	return b, nil
}

// ownBuild makes the snapshot info a build left its client's: each of its
// layers (the client pulled them, sent them, or its build made them) and
// the image that stands for it, as a snapshot of its sandbox is.
func (s *NetServer) ownBuild(ctx context.Context, client string, info *snapshot.Info) (ipc.SnapshotAns, error) {
	rec, err := SnapshotImage(info)
	if err != nil {
		return ipc.SnapshotAns{}, err
	}
	for _, h := range rec.Layers {
		if s.pulled(client, h) {
			continue // a base the client pulled: it counts for no one
		}
		if err := s.grant(ctx, client, h); err != nil {
			return ipc.SnapshotAns{}, err
		}
	}
	if err := s.store.PutRecord(ctx, image.Record{Kind: kindSnapshotImage, Name: rec.Digest.Hex, Data: []byte(info.Key)}); err != nil {
		return ipc.SnapshotAns{}, err
	}
	if err := s.putClientImage(ctx, client, rec); err != nil {
		return ipc.SnapshotAns{}, err
	}
	data, err := json.Marshal(info)
	return ipc.SnapshotAns{Info: data}, err
}
