// Package sparsetar writes the old-GNU sparse tar entries (typeflag S)
// that tests of tar readers use: a few bytes on the wire standing for a
// file of any size, which archive/tar reads back with its holes as zeros.
package sparsetar

import (
	"bytes"
	"fmt"
)

// Tar returns a tar of one old-GNU sparse entry named name, for a file of
// size bytes (at least 512): a hole, then 512 bytes of 'x' at its end,
// which are all its data on the wire; the end-of-archive marker follows.
func Tar(name string, size int64) []byte {
	h := make([]byte, 512)
	copy(h[0:], name)
	copy(h[100:], "0000644\x00")
	copy(h[108:], "0000000\x00")
	copy(h[116:], "0000000\x00")
	copy(h[124:], fmt.Sprintf("%011o\x00", 512)) // the data on the wire
	copy(h[136:], "00000000000\x00")
	h[156] = 'S'
	copy(h[257:], "ustar  \x00")
	base256(h[386:398], size-512) // the one data region's offset
	base256(h[398:410], 512)      // and length
	base256(h[483:495], size)     // the file's real size
	for i := 148; i < 156; i++ {
		h[i] = ' '
	}
	sum := 0
	for _, x := range h {
		sum += int(x)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
	var b bytes.Buffer
	b.Write(h)
	b.Write(bytes.Repeat([]byte{'x'}, 512))
	b.Write(make([]byte, 1024))
	return b.Bytes()
}

// base256 writes v into the numeric field f in GNU's base-256 form.
func base256(f []byte, v int64) {
	for i := len(f) - 1; i > 0; i-- {
		f[i] = byte(v)
		v >>= 8
	}
	f[0] = 0x80
}
