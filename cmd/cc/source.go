package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/ccsandbox/sandbox"
	"github.com/ccsandbox/sandbox/internal/egress"
)

// sourceRules say which kinds of IMAGE an openSource call accepts.
type sourceRules struct {
	paths    bool      // layout directories and archives on the host; false: never looked at, not even stat
	noPull   bool      // use only images the store has: no registry is asked
	guarded  bool      // a client chose the name: registries are reached as a sandbox's egress would be (egress.GuardedTransport)
	progress io.Writer // where a pull draws its progress bar; nil: nowhere
}

// openSource resolves what IMAGE names (see the package doc) into a
// Source for sandbox.New, and returns a function that releases it once the
// sandboxes made from it are closed.
func openSource(ctx context.Context, g *globals, name string, rules sourceRules) (sandbox.Source, func(), error) {
	nop := func() {}
	store := g.storeOptions()
	switch {
	case name == "":
		return nil, nop, errors.New("empty image name")
	case name == "host":
		return sandbox.HostImage(), nop, nil
	case isPath(name, rules.paths):
		if !rules.paths {
			return nil, nop, fmt.Errorf("image %q: host paths are not accepted here; name an image reference, a digest or \"host\"", name)
		}
		return loadPath(ctx, name, store)
	case strings.HasPrefix(name, "sha256:"):
		img, err := sandbox.OpenImage(ctx, name, store...)
		return img, nop, err
	case isHex(name) && len(name) >= 12:
		return openID(ctx, name, store)
	}
	var opts []sandbox.PullOption
	for _, o := range store {
		opts = append(opts, o)
	}
	if rules.progress != nil {
		opts = append(opts, sandbox.WithProgress(sandbox.ProgressBar(rules.progress)))
	}
	if rules.noPull {
		opts = append(opts, sandbox.WithPullPolicy(sandbox.PullNever))
	}
	if rules.guarded {
		opts = append(opts, sandbox.WithTransport(egress.GuardedTransport()))
	}
	img, err := sandbox.Pull(ctx, name, opts...)
	if rules.noPull && errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("%w (images are pulled only by a server started with --allow-network; cc pull puts one in the store)", err)
	}
	return img, nop, err
}

// isPath reports whether IMAGE names a file or directory of the host: it
// is written as a path (from / or ., or ending in .tar), or (with look) it
// has a slash and exists. Otherwise it is a reference ("library/busybox").
// Without look the host is not asked, so that a name cannot tell its
// sender whether a host path exists.
func isPath(name string, look bool) bool {
	if strings.HasPrefix(name, "/") || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".tar") {
		return true
	}
	if look && strings.Contains(name, "/") {
		_, err := os.Stat(name)
		return err == nil
	}
	return false
}

// loadPath loads the OCI layout directory or the docker archive at path.
func loadPath(ctx context.Context, path string, store []sandbox.StoreOption) (sandbox.Source, func(), error) {
	nop := func() {}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nop, fmt.Errorf("image %s: %w", path, err)
	}
	var opts []sandbox.LoadOption
	for _, o := range store {
		opts = append(opts, o)
	}
	if fi.IsDir() {
		img, err := sandbox.LoadOCILayout(ctx, path, opts...)
		return img, nop, err
	}
	img, err := sandbox.LoadDockerArchive(ctx, path, opts...)
	return img, nop, err
}

// openID opens what a hex id names: a snapshot's key (64 digits), or the
// image of the store whose digest it is or begins.
func openID(ctx context.Context, id string, store []sandbox.StoreOption) (sandbox.Source, func(), error) {
	nop := func() {}
	if len(id) == 64 {
		snap, err := sandbox.OpenSnapshot(ctx, id, store...)
		if err == nil {
			return snap, func() { snap.Close() }, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, nop, err
		}
	}
	digest, err := imageByPrefix(ctx, id, store)
	if err != nil {
		return nil, nop, err
	}
	img, err := sandbox.OpenImage(ctx, digest, store...)
	return img, nop, err
}

// imageByPrefix returns the digest of the one image of the store whose
// digest begins with "sha256:"+prefix.
func imageByPrefix(ctx context.Context, prefix string, store []sandbox.StoreOption) (string, error) {
	list, err := sandbox.Images(ctx, store...)
	if err != nil {
		return "", err
	}
	var found []string
	for _, im := range list {
		if strings.HasPrefix(im.Digest, "sha256:"+prefix) {
			found = append(found, im.Digest)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no image or snapshot %s in the store: %w", prefix, fs.ErrNotExist)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%s is ambiguous: it begins %d images' digests (%s)", prefix, len(found), strings.Join(found, ", "))
}

func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}
