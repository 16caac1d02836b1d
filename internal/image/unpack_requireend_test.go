package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ccsandbox/sandbox/internal/testutil/sparsetar"
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

// TestUnpackRequireEndMetaHeaderTail: a stream that stops right after a
// PAX extended header (or a GNU long-name header) and its data, what an
// agent writing a file of a long name or with xattrs sends when it fails
// between that and the entry's own header, reads as archive/tar's end
// past 1024 bytes since the last entry: it is refused all the same.
func TestUnpackRequireEndMetaHeaderTail(t *testing.T) {
	long := strings.Repeat("d", 200) + "/" + strings.Repeat("f", 400) // more than 512 bytes of records
	for _, format := range []tar.Format{tar.FormatPAX, tar.FormatGNU} {
		t.Run(format.String(), func(t *testing.T) {
			var b bytes.Buffer
			tw := tar.NewWriter(&b)
			tw.WriteHeader(&tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1, Format: format})
			tw.Write([]byte("x"))
			tw.WriteHeader(&tar.Header{Name: long, Typeflag: tar.TypeReg, Mode: 0o644, Format: format})
			tw.Close()
			whole := b.Bytes()
			cut := whole[:len(whole)-1024-512] // without the entry's own header and the marker
			_, err := Unpack(context.Background(), bytes.NewReader(cut), t.TempDir(), UnpackOptions{RequireEnd: true})
			if err == nil || !strings.Contains(err.Error(), "end-of-archive") {
				t.Fatalf("a tar cut after a %v meta header: %v, want the missing end-of-archive marker", format, err)
			}
		})
	}
}

// TestUnpackRequireEndSparseWhiteout: a whiteout's data is never read by
// the unpacker, so RequireEnd drains it, through archive/tar, which gives
// a sparse entry's holes as zeros: 1 KiB naming 64 GiB is refused past
// the limit on what Unpack writes, not zero-filled to the end.
func TestUnpackRequireEndSparseWhiteout(t *testing.T) {
	data := sparsetar.Tar(".wh.big", 64<<30)
	_, err := Unpack(context.Background(), bytes.NewReader(data), t.TempDir(), UnpackOptions{RequireEnd: true, Limits: Limits{MaxBytes: 16 << 20}})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a sparse whiteout naming 64 GiB, within 16 MiB: %v, want ErrTooLarge", err)
	}
}
