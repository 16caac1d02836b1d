package image

import (
	"archive/tar"
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestUnpackRequireEnd: with RequireEnd, a tar that stops at an entry's
// boundary without its end-of-archive marker (an agent that failed half
// way) is refused; archive/tar alone takes it for the end.
func TestUnpackRequireEnd(t *testing.T) {
	build := func(files map[string][]byte, names []string) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, n := range names {
			tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[n]))})
			tw.Write(files[n])
		}
		tw.Close()
		return b.Bytes()
	}
	zeros := make([]byte, 4096) // a file whose data ends in more zeros than the marker
	whole := build(map[string][]byte{"a": []byte("x"), "b": zeros, "z": []byte("marker")}, []string{"a", "b", "z"})
	// The stream cut right after b's data (a multiple of 512: no padding),
	// before z's header: what an agent that failed at z sends.
	cutAfterB := whole[:512+512+512+4096]
	empty := build(nil, nil)
	for _, tc := range []struct {
		name    string
		data    []byte
		require bool
		ok      bool
	}{
		{"whole", whole, true, true},
		{"empty layer", empty, true, true},
		{"cut after an entry", cutAfterB, true, false},
		{"cut after an entry, not required", cutAfterB, false, true},
		{"nothing", nil, true, false},
		{"one zero block", append(append([]byte(nil), cutAfterB...), make([]byte, 512)...), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unpack(context.Background(), bytes.NewReader(tc.data), t.TempDir(), UnpackOptions{RequireEnd: tc.require})
			if tc.ok && err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "end-of-archive")) {
				t.Fatalf("Unpack: %v, want the missing end-of-archive marker", err)
			}
		})
	}
}
