package helper

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ccsandbox/sandbox/internal/image"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/snapshot"
)

// Snapshots of a network helper's sandboxes live in the helper's store:
// the snapshot stands on the image the sandbox started from (as the
// helper knows it, never as the client describes it), and is recorded as
// an image of the sandbox's owner too (SnapshotImage, putClientImage), so
// that the client starts sandboxes of it with MsgRemoteNew by digest.

// SnapshotImage returns the image record under which a network helper
// keeps the snapshot info: the snapshot's config with its rootfs naming
// the snapshot's layers, named by that config's digest. The helper and
// its client derive the same digest from the same info. It returns an
// error when the info's config is not a JSON object.
func SnapshotImage(info *snapshot.Info) (image.ImageRecord, error) {
	config, err := image.WithDiffIDs(info.Config, info.Layers)
	if err != nil {
		return image.ImageRecord{}, fmt.Errorf("snapshot %s: %w", info.Key, err)
	}
	return image.ImageRecord{Digest: image.ConfigDigest(config), Config: config, Layers: info.Layers}, nil
}

// kindSnapshotImage names the store records that say which snapshot an
// image SnapshotImage made is (Data: its key), so that a sandbox of it
// stands on that snapshot: its own snapshots are the snapshot's children.
const kindSnapshotImage = "snapshot-image"

// clientImageKey returns the key snapshots of a sandbox of the client
// image h stand on: the snapshot's, for an image of a snapshot. Its
// prefix sets it apart from a pulled image's key ("image-" and the
// manifest's digest), so that bytes that are both a manifest and a config
// cannot make the two stand on one key.
func (s *NetServer) clientImageKey(h v1.Hash) string {
	if r, err := s.store.Record(kindSnapshotImage, h.Hex); err == nil && len(r.Data) > 0 {
		return string(r.Data)
	}
	return "client-" + h.Hex
}

// ownSnapshot grants the snapshot's layers that its sandbox's image lacks
// (the new one, which Parent.BeforeAdd marked private before it entered
// the store) to the sandbox's owner.
func (s *session) ownSnapshot(ctx context.Context, ni *netInstance, rec image.ImageRecord) error {
	for _, h := range rec.Layers {
		if slices.Contains(ni.layers, h) {
			continue
		}
		if err := s.srv.grant(ctx, ni.owner, h); err != nil {
			return err
		}
	}
	return nil
}

// Bounds of a network client's snapshot excludes, which the helper
// matches against every path of the sandbox's changes.
const (
	maxExcludes       = 64
	maxExcludePattern = 256 // bytes
)

// checkExcludes refuses excludes beyond those bounds.
func checkExcludes(excludes []string) error {
	if len(excludes) > maxExcludes {
		return &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: fmt.Sprintf("%d exclude patterns: more than the %d a snapshot may have", len(excludes), maxExcludes)}
	}
	for _, p := range excludes {
		if len(p) > maxExcludePattern {
			return &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: fmt.Sprintf("an exclude pattern of %d bytes: more than %d", len(p), maxExcludePattern)}
		}
	}
	return nil
}

// snapshot answers MsgInstanceSnapshot for the attached instance: into
// the helper's own store, on top of the instance's own image. The
// request's store directory and parent, which name things of the
// client's host, are not read.
func (s *session) snapshot(req *ipc.Request, m *ipc.SnapshotReq) (ipc.SnapshotAns, error) {
	ni, err := s.instance()
	if err != nil {
		return ipc.SnapshotAns{}, err
	}
	if err := checkExcludes(m.Options.Excludes); err != nil {
		return ipc.SnapshotAns{}, err
	}
	// What the snapshot adds is known only once it is taken: it needs
	// room for a byte, and may then pass the limit by its size. A
	// client's snapshots are taken one at a time, each counted (granted)
	// before the next checks the share: at once, they would all find
	// room and pass it by the sum of their sizes.
	sl := s.srv.snapLocks.of(ni.owner)
	sl.Lock()
	defer sl.Unlock()
	unbook, err := s.srv.storeRoom(ni.owner, 1)
	if err != nil {
		return ipc.SnapshotAns{}, err
	}
	defer unbook()
	parent := snapshot.Parent{Key: ni.imageKey, Layers: ni.layers, Config: ni.config,
		BeforeAdd: func(id v1.Hash) error { return s.srv.markPrivate(req.Context(), id) }}
	if len(parent.Config) == 0 {
		parent.Config = image.ScratchConfig()
	}
	info, err := ni.inst.Snapshot(req.Context(), s.srv.store, m.Options.Excludes, parent, s.srv.log)
	if err != nil {
		return ipc.SnapshotAns{}, err
	}
	rec, err := SnapshotImage(info)
	if err != nil {
		return ipc.SnapshotAns{}, err
	}
	err = s.ownSnapshot(req.Context(), ni, rec)
	if err == nil {
		err = s.srv.store.PutRecord(req.Context(), image.Record{Kind: kindSnapshotImage, Name: rec.Digest.Hex, Data: []byte(info.Key)})
	}
	if err == nil {
		err = s.srv.putClientImage(req.Context(), ni.owner, rec)
	}
	if err != nil {
		return ipc.SnapshotAns{}, fmt.Errorf("recording snapshot %s: %w", info.Key, err)
	}
	data, err := json.Marshal(info)
	return ipc.SnapshotAns{Info: data}, err
}
