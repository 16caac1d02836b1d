package ipc

import (
	"bytes"
	"io"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzReadLinkFrame reads arbitrary bytes as a MsgRemoteTap stream (the
// peer may be hostile): no input panics or reads past the bound, and each
// frame read writes back as the same bytes.
func FuzzReadLinkFrame(f *testing.F) {
	var b bytes.Buffer
	WriteLinkFrame(&b, []byte("frame one"))
	WriteLinkFrame(&b, nil)
	f.Add(b.Bytes())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Add([]byte{0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		buf := make([]byte, MaxLinkFrame)
		for {
			frame, err := ReadLinkFrame(r, buf)
			if err != nil {
				return
			}
			var out bytes.Buffer
			if err := WriteLinkFrame(&out, frame); err != nil {
				t.Fatal(err)
			}
			back, err := ReadLinkFrame(&out, make([]byte, MaxLinkFrame))
			if err != nil || !bytes.Equal(back, frame) {
				t.Fatalf("frame of %d bytes reads back as %d bytes, %v", len(frame), len(back), err)
			}
		}
	})
}

// TestLinkFrameBounds: a length beyond MaxLinkFrame is refused before any
// of it is read, and a frame too large is not written.
func TestLinkFrameBounds(t *testing.T) {
	if _, err := ReadLinkFrame(bytes.NewReader([]byte{0, 1, 0, 1}), make([]byte, MaxLinkFrame)); err == nil {
		t.Error("a frame of 65537 bytes was read")
	}
	if err := WriteLinkFrame(io.Discard, make([]byte, MaxLinkFrame+1)); err == nil {
		t.Error("a frame of 65537 bytes was written")
	}
}

// TestRelayLinkFrames: frames cross a relay between a packet socket and a
// stream both ways, each whole, and closing the device's far end ends the
// relay and closes the stream.
func TestRelayLinkFrames(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	dev, link := os.NewFile(uintptr(fds[0]), "dev"), os.NewFile(uintptr(fds[1]), "link")
	near, far := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- RelayLinkFrames(link, near) }()

	big := bytes.Repeat([]byte{7}, 60000)
	for _, frame := range [][]byte{[]byte("to the stream"), big} {
		if _, err := dev.Write(frame); err != nil {
			t.Fatal(err)
		}
		got, err := ReadLinkFrame(far, make([]byte, MaxLinkFrame))
		if err != nil || !bytes.Equal(got, frame) {
			t.Fatalf("device to stream: %d bytes, %v; want %d", len(got), err, len(frame))
		}
	}
	for _, frame := range [][]byte{[]byte("to the device"), big} {
		if err := WriteLinkFrame(far, frame); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, MaxLinkFrame)
		n, err := dev.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], frame) {
			t.Fatalf("stream to device: %d bytes, %v; want %d", n, err, len(frame))
		}
	}
	dev.Close()
	if err := <-done; err != nil {
		t.Errorf("the relay ended with %v, want nil when the device's end closes", err)
	}
	if _, err := far.Read(make([]byte, 1)); err == nil {
		t.Error("the stream is still open after the relay ended")
	}
}
