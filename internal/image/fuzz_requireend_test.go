package image

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/ccsandbox/sandbox/internal/untrusted"
)

// FuzzUnpackRequireEndPrefix: no strict prefix of a tar that
// tar.Writer wrote (its marker is its last 1024 bytes) may be taken by
// Unpack with RequireEnd. Entries get names of up to ~700 bytes (PAX and
// GNU long names), xattrs (PAX records) and data sizes around 512.
func FuzzUnpackRequireEndPrefix(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, uint16(100), false)
	f.Add([]byte{0x81, 0x40, 0x22, 0x10}, uint16(2000), true)
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, spec []byte, cut uint16, gnu bool) {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for i := 0; i+1 < len(spec) && i < 16; i += 2 {
			n, s := spec[i], spec[i+1]
			name := string(rune('a'+i/2)) + strings.Repeat("n", int(n&0x7f)*5)
			h := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(s) * 4}
			if gnu {
				h.Format = tar.FormatGNU
			} else if n&0x80 != 0 {
				h.PAXRecords = map[string]string{"SCHILY.xattr.user.x": strings.Repeat("v", int(s)*3)}
			}
			if tw.WriteHeader(h) != nil {
				return
			}
			tw.Write(bytes.Repeat([]byte{byte(i)}, int(h.Size))) // zeros for the first entry
		}
		tw.Close()
		whole := b.Bytes()
		k := int(cut) % len(whole)
		around, err := os.MkdirTemp(base, "in")
		if err != nil {
			t.Fatal(err)
		}
		defer untrusted.RemoveAll(around)
		if _, err := Unpack(context.Background(), bytes.NewReader(whole[:k]), around, UnpackOptions{RequireEnd: true}); err == nil {
			t.Fatalf("a prefix of %d of %d bytes was taken whole", k, len(whole))
		}
	})
}
