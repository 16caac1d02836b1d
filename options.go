package sandbox

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
)

// Option configures New. Each With function returns an option for the calls
// it applies to; the compiler rejects an option passed to a call it does
// not fit, and a value an option cannot accept is an error from the call.
type Option interface {
	applyNew(*newOptions) error
}

// PullOption configures Pull.
type PullOption interface {
	applyPull(*pullOptions) error
}

// LoadOption configures LoadOCILayout and LoadDockerArchive.
type LoadOption interface {
	applyLoad(*loadOptions) error
}

// StoreOption is accepted by every call that uses the layer store.
type StoreOption interface {
	Option
	PullOption
	LoadOption
	BuildOption
}

// storeOptions are the settings every store-using call shares.
type storeOptions struct {
	cacheDir string       // empty: defaultCacheDir
	logger   *slog.Logger // never nil after defaults
}

// storeOption is a StoreOption made of one function over storeOptions.
type storeOption func(*storeOptions) error

func (f storeOption) applyNew(o *newOptions) error     { return f(&o.storeOptions) }
func (f storeOption) applyPull(o *pullOptions) error   { return f(&o.storeOptions) }
func (f storeOption) applyLoad(o *loadOptions) error   { return f(&o.storeOptions) }
func (f storeOption) applyBuild(o *buildOptions) error { return f(&o.storeOptions) }

// WithCacheDir sets the directory of the layer store, where images, layers
// and snapshots are kept. The default is the CC_CACHE_DIR environment
// variable, or else the "cc" directory under os.UserCacheDir(). An empty dir
// is an error.
func WithCacheDir(dir string) StoreOption {
	return storeOption(func(o *storeOptions) error {
		if dir == "" {
			return errors.New("WithCacheDir: empty directory")
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return err
		}
		o.cacheDir = abs
		return nil
	})
}

// WithLogger sets where the SDK logs what it does (at Debug level) and what
// goes wrong in the background (at Warn and Error). The default discards
// everything. A nil logger is an error.
func WithLogger(l *slog.Logger) StoreOption {
	return storeOption(func(o *storeOptions) error {
		if l == nil {
			return errors.New("WithLogger: nil logger")
		}
		o.logger = l
		return nil
	})
}

// setDefaults fills in what no option set.
func (o *storeOptions) setDefaults() error {
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.cacheDir == "" {
		dir, err := defaultCacheDir()
		if err != nil {
			return err
		}
		o.cacheDir = dir
	}
	return nil
}

// defaultCacheDir returns CC_CACHE_DIR, or os.UserCacheDir()/cc.
func defaultCacheDir() (string, error) {
	if d := os.Getenv("CC_CACHE_DIR"); d != "" {
		return filepath.Abs(d)
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", errors.New("no cache directory: set CC_CACHE_DIR or use WithCacheDir")
	}
	return filepath.Join(d, "cc"), nil
}
