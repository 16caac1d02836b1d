package testimage

import (
	"archive/tar"
	"errors"
	"io"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func TestBusybox(t *testing.T) {
	img, err := Busybox()
	if errors.Is(err, ErrNoBusybox) {
		t.Fatalf("%v", err) // make test installs it; a missing package is a setup failure
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("invalid image: %v", err)
	}
	layers, _ := img.Layers()
	if len(layers) != 1 {
		t.Fatalf("%d layers", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	seen := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[h.Name] = h
	}
	for _, name := range []string{"bin/busybox", "bin/sh", "bin/ls", "usr/bin/env", "etc/passwd", "tmp/"} {
		if seen[name] == nil {
			t.Errorf("missing %s", name)
		}
	}
	if h := seen["tmp/"]; h != nil && h.Mode != 0o1777 {
		t.Errorf("/tmp mode %o", h.Mode)
	}
	d1, _ := img.Digest()
	again, _ := buildBusybox()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("image not reproducible: %v vs %v", d1, d2)
	}
}
