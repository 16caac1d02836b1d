package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Record is a named document in the store that keeps layers alive: an
// image, a reference, a snapshot. Prune removes every layer that no record
// and no lease lists.
type Record struct {
	Kind   string    `json:"kind"`   // what it is: "image", "ref", "snapshot", ...
	Name   string    `json:"name"`   // unique within its kind
	Layers []v1.Hash `json:"layers"` // layers it keeps alive
	Data   []byte    `json:"data,omitempty"`
}

// validName reports whether s can be a record kind or name: 1 to 128
// letters, digits, '-', '_' or '.', not starting with '.'.
func validName(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '.' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func (s *Store) recordPath(kind, name string) string {
	return s.path("records", kind, name+".json")
}

// PutRecord writes r atomically, replacing the record of the same kind
// and name. Every layer it lists must be in the store (an error matching
// fs.ErrNotExist otherwise), and stays there until the record is deleted.
func (s *Store) PutRecord(ctx context.Context, r Record) error {
	if !validName(r.Kind) || !validName(r.Name) {
		return fmt.Errorf("store record %q/%q: bad kind or name", r.Kind, r.Name)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	hold, err := s.shared(ctx)
	if err != nil {
		return fmt.Errorf("locking layer store: %w", err)
	}
	defer hold.unlock()
	for _, l := range r.Layers {
		if !s.HasLayer(l) {
			return fmt.Errorf("store record %s/%s: layer %s: %w", r.Kind, r.Name, l, fs.ErrNotExist)
		}
	}
	if err := os.MkdirAll(s.path("records", r.Kind), 0o700); err != nil {
		return err
	}
	if err := writeFileAtomic(s.recordPath(r.Kind, r.Name), b); err != nil {
		return fmt.Errorf("store record %s/%s: %w", r.Kind, r.Name, err)
	}
	return nil
}

// RecordSize returns the bytes the record of kind and name takes in the
// store; an error matching fs.ErrNotExist when there is none.
func (s *Store) RecordSize(kind, name string) (int64, error) {
	if !validName(kind) || !validName(name) {
		return 0, fmt.Errorf("store record %q/%q: %w", kind, name, fs.ErrNotExist)
	}
	fi, err := os.Lstat(s.recordPath(kind, name))
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Record reads a record; an error matching fs.ErrNotExist when there is
// none.
func (s *Store) Record(kind, name string) (Record, error) {
	if !validName(kind) || !validName(name) {
		return Record{}, fmt.Errorf("store record %q/%q: %w", kind, name, fs.ErrNotExist)
	}
	b, err := os.ReadFile(s.recordPath(kind, name))
	if err != nil {
		return Record{}, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("store record %s/%s: %w", kind, name, err)
	}
	return r, nil
}

// DeleteRecord removes a record; an error matching fs.ErrNotExist when
// there is none. Its layers stay until Prune.
func (s *Store) DeleteRecord(kind, name string) error {
	if !validName(kind) || !validName(name) {
		return fmt.Errorf("store record %q/%q: %w", kind, name, fs.ErrNotExist)
	}
	if err := os.Remove(s.recordPath(kind, name)); err != nil {
		return err
	}
	return syncDir(s.path("records", kind))
}

// RecordNames returns the names of the records of kind that begin with
// prefix, in directory order, without reading them: a caller that wants
// a few records of a kind many share reads only those.
func (s *Store) RecordNames(kind, prefix string) ([]string, error) {
	if !validName(kind) {
		return nil, fmt.Errorf("store records %q: bad kind", kind)
	}
	es, err := os.ReadDir(s.path("records", kind))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range es {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if ok && validName(name) && strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	return names, nil
}

// Records returns every record of a kind ("" for all kinds).
func (s *Store) Records(kind string) ([]Record, error) {
	kinds := []string{kind}
	if kind == "" {
		es, err := os.ReadDir(s.path("records"))
		if err != nil {
			return nil, err
		}
		kinds = kinds[:0]
		for _, e := range es {
			if e.IsDir() && validName(e.Name()) {
				kinds = append(kinds, e.Name())
			}
		}
	}
	var out []Record
	for _, k := range kinds {
		es, err := os.ReadDir(s.path("records", k))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			name, ok := strings.CutSuffix(e.Name(), ".json")
			if !ok || !validName(name) {
				continue
			}
			r, err := s.Record(k, name)
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted meanwhile
			}
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}
