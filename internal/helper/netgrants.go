package helper

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ccsandbox/sandbox/internal/image"
)

// What a client brings by content (the layers it sends, the images it
// records, the snapshots of its sandboxes) is its own: the helper's store
// is shared, but another client can neither start such an image by digest
// nor learn from MsgRemoteLayers that such a layer is there, unless it
// shows it holds the same content by sending it (the helper then checks
// the stream against the digest even though it has the layer). What the
// helper pulled from a registry is anyone's: any client could pull it by
// reference.

// Record kinds of the helper's store.
const (
	kindPrivate = "private" // named by a layer's hex: a client brought it
	kindGrant   = "grant"   // named clientKey-hex: that client may use the layer or client image
	// kindPulled is a grant a pull gave: the client may use the layer,
	// which the pull checked against a registry. It counts in no
	// client's share, as what the helper pulled does not: another client
	// that had sent the layer first does not make it the puller's.
	kindPulled = "pulled"
	// kindClientImage records the images clients brought (by content, or
	// snapshots of their sandboxes), named by their config's digest, with
	// the config as Data. They are kept apart from the store's images,
	// which pulls record and find by manifest digest, so that no client
	// can put a record where a pull would take it for what it pulled.
	kindClientImage = "client-image"
	// kindCharge records what a client's build wrote beside its layers
	// (step records, each with its config), named clientKey-random, with
	// the bytes as Data (see storeUse).
	kindCharge = "charge"
)

// clientKey names a client in record names (which allow few characters).
func clientKey(client string) string {
	sum := sha256.Sum256([]byte(client))
	return hex.EncodeToString(sum[:16])
}

// usable reports whether the store has the layer h and client may use
// it: it is not private, or the client holds a grant. A record that
// cannot be read counts as there (the check fails closed).
func (s *NetServer) usable(client string, h v1.Hash) bool {
	if !s.store.HasLayer(h) {
		return false
	}
	if _, err := s.store.Record(kindPrivate, h.Hex); errors.Is(err, fs.ErrNotExist) {
		return true
	}
	return s.granted(client, h)
}

// grantName names client's grant of h.
func grantName(client string, h v1.Hash) string { return clientKey(client) + "-" + h.Hex }

// granted reports whether client holds a grant of h, or one a pull gave.
func (s *NetServer) granted(client string, h v1.Hash) bool {
	for _, kind := range []string{kindGrant, kindPulled} {
		if _, err := s.store.Record(kind, grantName(client, h)); err == nil {
			return true
		}
	}
	return false
}

// putClientImage records rec, an image client brought, as the client's.
func (s *NetServer) putClientImage(ctx context.Context, client string, rec image.ImageRecord) error {
	if err := s.grant(ctx, client, rec.Digest); err != nil {
		return err
	}
	if err := s.store.PutRecord(ctx, image.Record{Kind: kindClientImage, Name: rec.Digest.Hex, Layers: rec.Layers, Data: rec.Config}); err != nil {
		return fmt.Errorf("recording image %s: %w", rec.Digest, err)
	}
	return nil
}

// clientImage returns the image h that some client brought, when client
// may use it and each of its layers (which are all in the store).
func (s *NetServer) clientImage(client string, h v1.Hash) (image.ImageRecord, bool) {
	r, err := s.store.Record(kindClientImage, h.Hex)
	if err != nil || !s.granted(client, h) || image.ConfigDigest(r.Data) != h {
		return image.ImageRecord{}, false
	}
	rec := image.ImageRecord{Digest: h, Config: r.Data, Layers: r.Layers}
	return rec, s.usableLayers(client, rec)
}

// usableLayers reports whether every layer of rec is usable by client.
// It is checked at each start, so that a record made in a moment when a
// layer was not yet marked private gives nothing.
func (s *NetServer) usableLayers(client string, rec image.ImageRecord) bool {
	for _, l := range rec.Layers {
		if !s.usable(client, l) {
			return false
		}
	}
	return true
}

// markPrivate makes h private: it came from a client, not a registry.
func (s *NetServer) markPrivate(ctx context.Context, h v1.Hash) error {
	return s.store.PutRecord(ctx, image.Record{Kind: kindPrivate, Name: h.Hex})
}

// grant lets client use h.
func (s *NetServer) grant(ctx context.Context, client string, h v1.Hash) error {
	return s.store.PutRecord(ctx, image.Record{Kind: kindGrant, Name: grantName(client, h)})
}

// pulled reports whether client holds a grant of h that a pull gave.
func (s *NetServer) pulled(client string, h v1.Hash) bool {
	_, err := s.store.Record(kindPulled, grantName(client, h))
	return err == nil
}

// grantPulled lets client use h, which a pull of its checked against a
// registry.
func (s *NetServer) grantPulled(ctx context.Context, client string, h v1.Hash) error {
	return s.store.PutRecord(ctx, image.Record{Kind: kindPulled, Name: grantName(client, h)})
}
