//go:build linux

package image

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/layertar"
)

// childEnv makes the test binary act as a child process of a test (see
// runChild): its value names what the child does.
const childEnv = "CC_IMAGE_TEST_CHILD"

func TestMain(m *testing.M) {
	if what := os.Getenv(childEnv); what != "" {
		os.Exit(runChild(what))
	}
	os.Exit(m.Run())
}

// runChild does the work of a child process and prints its result as
// JSON on stdout.
func runChild(what string) int {
	ctx := context.Background()
	var out any
	var err error
	switch what {
	case "pull":
		// Pull CC_REF into the store at CC_STORE.
		var s *Store
		if s, err = Open(os.Getenv("CC_STORE"), Options{}); err == nil {
			var p Pulled
			p, err = s.Pull(ctx, os.Getenv("CC_REF"), PullOptions{})
			out = p.Image.Digest.String()
		}
	case "unpack":
		// Unpack the tar CC_TAR into CC_DIR with this user's id map,
		// then export it again to CC_EXPORT.
		var f *os.File
		if f, err = os.Open(os.Getenv("CC_TAR")); err == nil {
			var st UnpackStats
			st, err = Unpack(ctx, f, os.Getenv("CC_DIR"), UnpackOptions{IDs: idmap.Current()})
			out = st
			f.Close()
		}
		if err == nil {
			var w *os.File
			if w, err = os.Create(os.Getenv("CC_EXPORT")); err == nil {
				err = layertar.Write(ctx, w, os.Getenv("CC_DIR"), idmap.Current(), nil)
				w.Close()
			}
		}
	default:
		err = fmt.Errorf("unknown child task %q", what)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(out)
	return 0
}
