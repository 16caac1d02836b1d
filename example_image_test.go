//go:build linux

package sandbox_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/ccsandbox/sandbox"
	"github.com/ccsandbox/sandbox/internal/testutil/testimage"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func ExamplePull() {
	// So that the example runs offline, it serves the test busybox image
	// from a registry on loopback; a program names any registry instead,
	// such as "docker.io/library/alpine:3.20".
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	ref := strings.TrimPrefix(reg.URL, "http://") + "/demo/busybox:1"
	src, err := testimage.Busybox()
	if err != nil {
		log.Fatal(err)
	}
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, src); err != nil {
		log.Fatal(err)
	}
	cache, _ := os.MkdirTemp("", "cc-example-")
	defer os.RemoveAll(cache)

	img, err := sandbox.Pull(context.Background(), ref, sandbox.WithCacheDir(cache))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.Config().Cmd, img.Config().OS)
	// Output: [sh] linux
}

func ExampleLoadOCILayout() {
	// An OCI layout as skopeo copy oci:DIR:TAG writes it.
	dir, _ := os.MkdirTemp("", "cc-example-")
	defer os.RemoveAll(dir)
	src, err := testimage.Busybox()
	if err != nil {
		log.Fatal(err)
	}
	if err := testimage.WriteLayout(dir+"/layout", src, "busybox:1"); err != nil {
		log.Fatal(err)
	}

	img, err := sandbox.LoadOCILayout(context.Background(), dir+"/layout",
		sandbox.WithTag("busybox:1"), sandbox.WithCacheDir(dir+"/cache"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.Reference(), img.Config().Env)
	// Output: busybox:1 [PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin]
}
