package helper

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ccsandbox/sandbox/internal/image"
)

// A client's share of the helper's disk is what it brought: the layers it
// sent by content or made by snapshotting its sandboxes (those the store
// holds as private and the client holds a grant of) and the configs of
// the images it recorded. A layer counts as the tar it came in would: its
// file data and tarEntrySize bytes an entry, so that a layer of many
// empty files is not free. Its policy's maxStoreMB bounds the sum, with
// the uploads in progress counted at their declared size. What the
// helper pulled from registries is everyone's and counts for no one; a
// layer two clients sent counts for both. A build's records (each step's
// config, in its snapshot and cache records) count too, as the charge
// records its end leaves.

// tarEntrySize is what an entry of a layer counts for beside its data: a
// tar header's size.
const tarEntrySize = 512

// storeUse returns the bytes of the store's content that client brought
// (see above). Records that cannot be read count for nothing.
func (s *NetServer) storeUse(client string) (int64, error) {
	prefix := clientKey(client) + "-"
	grants, err := s.store.RecordNames(kindGrant, prefix)
	if err != nil {
		return 0, fmt.Errorf("reading the store's grants: %w", err)
	}
	var use int64
	for _, g := range grants {
		hex := strings.TrimPrefix(g, prefix)
		if r, err := s.store.Record(kindClientImage, hex); err == nil {
			use += int64(len(r.Data))
			continue
		}
		h := v1.Hash{Algorithm: "sha256", Hex: hex}
		if _, err := s.store.Record(kindPrivate, hex); err != nil {
			continue // a pulled layer: everyone's
		}
		if li, err := s.store.Layer(h); err == nil {
			use += li.Size + tarEntrySize*int64(li.Entries)
		}
	}
	charges, err := s.store.RecordNames(kindCharge, prefix)
	if err != nil {
		return 0, fmt.Errorf("reading the store's charges: %w", err)
	}
	for _, name := range charges {
		if c, err := s.store.Record(kindCharge, name); err == nil {
			n, _ := strconv.ParseInt(string(c.Data), 10, 64)
			use += n
		}
	}
	return use, nil
}

// storeRoom books n bytes of client's share for content on its way in, or
// refuses (matching fs.ErrPermission, naming the limit) when its share,
// the bookings in progress and n pass its maxStoreMB. release gives the
// booking back, once the content is in the store (and counts there) or
// refused; calls after the first do nothing.
func (s *NetServer) storeRoom(client string, n int64) (release func(), err error) {
	limit := s.ledger.limits(client).MaxStoreMB << 20
	if limit == 0 {
		return func() {}, nil
	}
	// The client's own lock is held from the read of its share to its
	// booking, and by a release, so that nothing of the client's lands
	// and gives its booking back in between; another client's check
	// does not wait on this read.
	cl := s.quotaLocks.of(client)
	cl.Lock()
	defer cl.Unlock()
	use, err := s.storeUse(client)
	if err != nil {
		return nil, err
	}
	s.quotaMu.Lock()
	defer s.quotaMu.Unlock()
	if s.booked == nil {
		s.booked = map[string]int64{}
	}
	if have := use + s.booked[client]; have+n > limit {
		return nil, limitError("client %q holds %d bytes in this helper's store and would bring %d more, over its limit of %d MB (maxStoreMB)",
			client, have, n, limit>>20)
	}
	s.booked[client] += n
	return sync.OnceFunc(func() {
		cl.Lock()
		defer cl.Unlock()
		s.quotaMu.Lock()
		defer s.quotaMu.Unlock()
		if s.booked[client] -= n; s.booked[client] == 0 {
			delete(s.booked, client)
		}
	}), nil
}

// checkRoom refuses, as storeRoom does, when client's share with n bytes
// more would pass its limit; it books nothing (what it checks for is in
// the store already, or about to be, and counts there).
func (s *NetServer) checkRoom(client string, n int64) error {
	release, err := s.storeRoom(client, n)
	if err == nil {
		release()
	}
	return err
}

// imageRecordSize is what recording rec as a client image adds to its
// client's share.
func imageRecordSize(rec image.ImageRecord) int64 { return int64(len(rec.Config)) }
