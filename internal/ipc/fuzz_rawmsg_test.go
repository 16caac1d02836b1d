package ipc

import (
	"bytes"
	"errors"
	"io/fs"
	"testing"
)

// FuzzReadStatus reads arbitrary bytes as the status frame that ends a
// MsgFsWriteStream (the agent, which may be hostile, writes it): no input
// may panic or allocate beyond the frame's bound, and whatever WriteStatus
// writes reads back as the same outcome.
func FuzzReadStatus(f *testing.F) {
	for _, err := range []error{nil, &fs.PathError{Op: "write", Path: "/f", Err: fs.ErrPermission}} {
		var b bytes.Buffer
		WriteStatus(&b, err)
		f.Add(b.Bytes())
	}
	f.Add([]byte{0xff, 0x01, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		err := ReadStatus(bytes.NewReader(b))
		if err == nil || errors.Is(err, ErrTransport) {
			return
		}
		var out bytes.Buffer
		if werr := WriteStatus(&out, err); werr != nil {
			t.Fatal(werr)
		}
		err2 := ReadStatus(&out)
		if err2 == nil || CodeOf(err2) != CodeOf(err) {
			t.Fatalf("status %v reads back as %v", err, err2)
		}
	})
}

// TestStatusRoundTrip: success and an error cross a status frame.
func TestStatusRoundTrip(t *testing.T) {
	var b bytes.Buffer
	WriteStatus(&b, nil)
	WriteStatus(&b, &fs.PathError{Op: "write", Path: "/f", Err: fs.ErrPermission})
	if err := ReadStatus(&b); err != nil {
		t.Errorf("success: %v", err)
	}
	if err := ReadStatus(&b); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("permission error: %v", err)
	}
	if err := ReadStatus(&b); !errors.Is(err, ErrTransport) {
		t.Errorf("no frame: %v", err)
	}
}
