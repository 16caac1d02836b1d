package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ccsandbox/sandbox/internal/helper"
	"github.com/ccsandbox/sandbox/internal/snapshot"
)

// helperSnapshot says where a snapshot of a network helper's sandbox
// lives: in the helper's store, kept there as an image (see
// helper.SnapshotImage).
type helperSnapshot struct {
	addr   string // the helper's, as Remote.Addr gives it
	digest v1.Hash
}

// errHere is the error of using s, which lives on a helper, anywhere but
// there (this host, another helper).
func (h *helperSnapshot) errHere(s *Snapshot) error {
	return fmt.Errorf("snapshot %s lives on the network helper %s: start it with that helper's Remote.New: %w", s.info.Key, h.addr, errors.ErrUnsupported)
}

// snapshotOnHelper snapshots the network helper's sandbox ni into the
// helper's store and returns the snapshot, which stays there.
func snapshotOnHelper(ctx context.Context, ni *helper.NetInstance, excludes []string) (*Snapshot, error) {
	info, err := ni.Snapshot(ctx, nil, excludes, snapshot.Parent{}, nil)
	if err != nil {
		return nil, fmt.Errorf("Snapshot: %w", err)
	}
	rec, err := helper.SnapshotImage(info)
	if err != nil {
		return nil, fmt.Errorf("Snapshot: %w", err)
	}
	var cfg v1.ConfigFile
	if err := json.Unmarshal(info.Config, &cfg); err != nil {
		return nil, fmt.Errorf("Snapshot: the helper's snapshot %s: its config: %w", info.Key, err)
	}
	return &Snapshot{info: info, cfg: &cfg, onHelper: &helperSnapshot{addr: ni.Helper(), digest: rec.Digest}}, nil
}
