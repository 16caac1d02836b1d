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

// FuzzReadBuildFrame reads arbitrary bytes as frames of a build stream
// (MsgRemoteBuild: the network helper, which a client need not trust
// with its memory, writes them): no input may panic or allocate beyond a
// frame's bound, and an event or an end that reads must write back as
// the same frame.
func FuzzReadBuildFrame(f *testing.F) {
	var b bytes.Buffer
	WriteBuildEvent(&b, &BuildEvent{Step: 1, Total: 2, Stage: "s", Instruction: "RUN x", Output: "line"})
	WriteBuildEnd(&b, &SnapshotAns{Info: []byte(`{"Key":"k"}`)}, nil)
	f.Add(b.Bytes())
	b.Reset()
	WriteBuildEnd(&b, nil, &fs.PathError{Op: "build", Path: "/", Err: fs.ErrNotExist})
	f.Add(b.Bytes())
	f.Add([]byte{0x09, 0x08, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			var ev BuildEvent
			var ans SnapshotAns
			end, err := ReadBuildFrame(r, &ev, &ans)
			if err != nil {
				return
			}
			var out bytes.Buffer
			if end {
				WriteBuildEnd(&out, &ans, nil)
			} else if werr := WriteBuildEvent(&out, &ev); werr != nil {
				t.Fatal(werr)
			}
			var ev2 BuildEvent
			var ans2 SnapshotAns
			end2, err := ReadBuildFrame(&out, &ev2, &ans2)
			if err != nil || end2 != end || ev2 != ev || !bytes.Equal(ans2.Info, ans.Info) {
				t.Fatalf("frame %+v %+v (end %t) reads back as %+v %+v (end %t), %v", ev, ans, end, ev2, ans2, end2, err)
			}
			if end {
				return
			}
		}
	})
}

// TestBuildFrames: events, then the end, cross a build stream; an end
// with an error reads as it; a stream that stops is a transport error.
func TestBuildFrames(t *testing.T) {
	var b bytes.Buffer
	WriteBuildEvent(&b, &BuildEvent{Step: 1, Total: 1, Stage: "s", Instruction: "RUN true", Done: true, Cached: true})
	WriteBuildEnd(&b, &SnapshotAns{Info: []byte("{}")}, nil)
	WriteBuildEnd(&b, nil, &fs.PathError{Op: "build", Path: "/", Err: fs.ErrPermission})
	var ev BuildEvent
	var ans SnapshotAns
	if end, err := ReadBuildFrame(&b, &ev, &ans); end || err != nil || !ev.Cached || ev.Instruction != "RUN true" {
		t.Errorf("event: %+v, end %t, %v", ev, end, err)
	}
	if end, err := ReadBuildFrame(&b, &ev, &ans); !end || err != nil || string(ans.Info) != "{}" {
		t.Errorf("end: %q, end %t, %v", ans.Info, end, err)
	}
	if end, err := ReadBuildFrame(&b, &ev, &ans); !end || !errors.Is(err, fs.ErrPermission) {
		t.Errorf("failed end: end %t, %v", end, err)
	}
	if _, err := ReadBuildFrame(&b, &ev, &ans); !errors.Is(err, ErrTransport) {
		t.Errorf("no frame: %v", err)
	}
	if err := WriteBuildEvent(&b, &BuildEvent{Output: string(make([]byte, MaxBuildEvent))}); err == nil {
		t.Error("an event over MaxBuildEvent was written")
	}
}
