package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Record kinds the package itself writes.
const (
	KindImage = "image" // one per image, named by its digest's hex
	KindRef   = "ref"   // a name that points to an image
)

// ImageRecord is what the store keeps of an image.
type ImageRecord struct {
	// Digest names the image: its manifest's digest, or its config's for
	// a source without a manifest (a docker archive).
	Digest v1.Hash
	// Config is the image's config blob as the source served it.
	Config []byte
	// Layers are the diffIDs of its layers, lowest first.
	Layers []v1.Hash
}

// ConfigFile parses the config blob.
func (r ImageRecord) ConfigFile() (*v1.ConfigFile, error) {
	return parseConfig(r.Config)
}

// imageData is an image record's Data.
type imageData struct {
	Config []byte `json:"config"`
}

// PutImage records an image whose layers are all in the store.
func (s *Store) PutImage(ctx context.Context, rec ImageRecord) error {
	if !validHash(rec.Digest) {
		return fmt.Errorf("recording image: bad digest %q", rec.Digest)
	}
	data, err := json.Marshal(imageData{Config: rec.Config})
	if err != nil {
		return err
	}
	return s.PutRecord(ctx, Record{Kind: KindImage, Name: rec.Digest.Hex, Layers: rec.Layers, Data: data})
}

// Image returns the record of an image whose layers are all present; an
// error matching fs.ErrNotExist otherwise.
func (s *Store) Image(digest v1.Hash) (ImageRecord, error) {
	if !validHash(digest) {
		return ImageRecord{}, fmt.Errorf("image %q: %w", digest, fs.ErrNotExist)
	}
	r, err := s.Record(KindImage, digest.Hex)
	if err != nil {
		return ImageRecord{}, fmt.Errorf("image %s: %w", digest, err)
	}
	var d imageData
	if err := json.Unmarshal(r.Data, &d); err != nil {
		return ImageRecord{}, fmt.Errorf("image %s: %w", digest, err)
	}
	for _, l := range r.Layers {
		if !s.HasLayer(l) {
			return ImageRecord{}, fmt.Errorf("image %s: layer %s: %w", digest, l, fs.ErrNotExist)
		}
	}
	return ImageRecord{Digest: digest, Config: d.Config, Layers: r.Layers}, nil
}

// DeleteImage removes an image's record and the references to it; its
// layers stay until Prune. An error matching fs.ErrNotExist when there is
// no such image.
func (s *Store) DeleteImage(digest v1.Hash) error {
	refs, err := s.Refs()
	if err != nil {
		return err
	}
	for _, r := range refs {
		if r.Image == digest {
			s.DeleteRecord(KindRef, refName(r.Key))
		}
	}
	if !validHash(digest) {
		return fmt.Errorf("image %q: %w", digest, fs.ErrNotExist)
	}
	return s.DeleteRecord(KindImage, digest.Hex)
}

// Ref is a name that points to an image: a reference as pulled, with the
// platform it was pulled for.
type Ref struct {
	Key   string  `json:"key"`   // unique: what the lookup uses
	Name  string  `json:"name"`  // the reference, for listing and removal
	Image v1.Hash `json:"image"` // the image's digest
}

func refName(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// PutRef points ref.Key at ref.Image, which must be recorded.
func (s *Store) PutRef(ctx context.Context, ref Ref) error {
	data, err := json.Marshal(ref)
	if err != nil {
		return err
	}
	return s.PutRecord(ctx, Record{Kind: KindRef, Name: refName(ref.Key), Data: data})
}

// LookupRef returns the ref stored under key; an error matching
// fs.ErrNotExist when there is none.
func (s *Store) LookupRef(key string) (Ref, error) {
	r, err := s.Record(KindRef, refName(key))
	if err != nil {
		return Ref{}, err
	}
	var ref Ref
	if err := json.Unmarshal(r.Data, &ref); err != nil {
		return Ref{}, fmt.Errorf("reference %q: %w", key, err)
	}
	if ref.Key != key {
		return Ref{}, fmt.Errorf("reference %q: %w", key, fs.ErrNotExist)
	}
	return ref, nil
}

// DeleteRef removes the ref stored under key.
func (s *Store) DeleteRef(key string) error {
	return s.DeleteRecord(KindRef, refName(key))
}

// Refs returns every ref.
func (s *Store) Refs() ([]Ref, error) {
	recs, err := s.Records(KindRef)
	if err != nil {
		return nil, err
	}
	out := make([]Ref, 0, len(recs))
	for _, r := range recs {
		var ref Ref
		if json.Unmarshal(r.Data, &ref) == nil {
			out = append(out, ref)
		}
	}
	return out, nil
}

// Images returns the digests of every recorded image.
func (s *Store) Images() ([]v1.Hash, error) {
	recs, err := s.Records(KindImage)
	if err != nil {
		return nil, err
	}
	var out []v1.Hash
	for _, r := range recs {
		out = append(out, v1.Hash{Algorithm: "sha256", Hex: r.Name})
	}
	return out, nil
}
