package ipc

import (
	"bytes"
	"golang.org/x/sys/unix"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// Fuzz targets: no input may make a decoder or the server panic, hang, or
// allocate beyond what the input justifies. Seeds are valid encodings plus
// edge cases; `make fuzz` runs each target for a bounded time.

func seedEncodings(f *testing.F) {
	for _, enc := range []func(*Encoder){
		func(e *Encoder) {
			EncodeFileInfo(e, FileInfo{Name: "a", Size: 1, Mode: 0o755, ModTime: 1, IsDir: true})
		},
		func(e *Encoder) { EncodeDirEntry(e, DirEntry{Name: "d", IsDir: true}) },
		func(e *Encoder) { EncodeMountConfig(e, MountConfig{Tag: "t", HostPath: "/h", Writable: true}) },
		func(e *Encoder) {
			EncodeInstanceOptions(e, InstanceOptions{MemoryMB: 64, CPUs: 1, TimeoutSecs: 3, User: "root",
				Mounts: []MountConfig{{Tag: "a", HostPath: "/a"}}})
		},
		func(e *Encoder) {
			EncodeSnapshotOptions(e, SnapshotOptions{Excludes: []string{"x", "y"}, CacheDir: "/c"})
		},
		func(e *Encoder) {
			EncodeDockerfileOptions(e, DockerfileOptions{Dockerfile: []byte("FROM scratch"), BuildArgs: map[string]string{"a": "b"}})
		},
		func(e *Encoder) { EncodeError(e, ErrCodeIO, "boom", "read", "/f") },
		func(e *Encoder) { encodeIPCError(e, &IPCError{Code: ErrCodeNotExist, Message: "m", Errno: 2}) },
		func(e *Encoder) { e.StringSlice([]string{"", "a", "bb"}) },
		func(e *Encoder) { e.Uint32(0xffffffff) },
	} {
		e := NewEncoder()
		enc(e)
		f.Add(e.Bytes())
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x00})
}

func FuzzDecoder(f *testing.F) {
	seedEncodings(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDecoder(b)
		// Read a script of values chosen by the input itself.
		for d.Remaining() > 0 {
			op, _ := d.Uint8()
			var err error
			switch op % 11 {
			case 0:
				_, err = d.Uint8()
			case 1:
				_, err = d.Uint16()
			case 2:
				_, err = d.Uint32()
			case 3:
				_, err = d.Uint64()
			case 4:
				_, err = d.Int32()
			case 5:
				_, err = d.Int64()
			case 6:
				_, err = d.Bool()
			case 7:
				_, err = d.String()
			case 8:
				_, err = d.Bytes()
			case 9:
				_, err = d.StringSlice()
			case 10:
				_, err = d.BorrowBytes()
			}
			if err != nil {
				if err != io.ErrUnexpectedEOF && !bytes.Contains([]byte(err.Error()), []byte("unexpected EOF")) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
			if d.Remaining() < 0 || d.Remaining() > len(b) {
				t.Fatalf("Remaining() = %d for %d bytes", d.Remaining(), len(b))
			}
		}
	})
}

func FuzzReadHeader(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0x00, 0x04, 0x00, 0x00, 0x00})
	f.Add([]byte{0xff, 0x00, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ReadHeader(bytes.NewReader(b))
		if err != nil {
			return
		}
		if h.Length > MaxMessageSize {
			t.Fatalf("accepted length %d", h.Length)
		}
		var out bytes.Buffer
		if err := WriteHeader(&out, h); err != nil || !bytes.Equal(out.Bytes(), b[:HeaderSize]) {
			t.Fatalf("header %+v does not round-trip: %x vs %x (%v)", h, out.Bytes(), b[:HeaderSize], err)
		}
	})
}

// fuzzRoundTrip checks that whatever a Decode* function accepts, its
// Encode* twin writes back to the same bytes it consumed.
func fuzzRoundTrip[T any](f *testing.F, dec func(*Decoder) (T, error), enc func(*Encoder, T), exact bool) {
	seedEncodings(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDecoder(b)
		v, err := dec(d)
		if err != nil {
			return
		}
		used := b[:len(b)-d.Remaining()]
		e := NewEncoder()
		enc(e, v)
		if exact && !bytes.Equal(e.Bytes(), used) {
			t.Fatalf("re-encoding %+v gave %x, consumed %x", v, e.Bytes(), used)
		}
		v2, err := dec(NewDecoder(e.Bytes()))
		if err != nil {
			t.Fatalf("re-encoded value does not decode: %v", err)
		}
		e2 := NewEncoder()
		enc(e2, v2)
		if !bytes.Equal(e.Bytes(), e2.Bytes()) {
			t.Fatalf("encoding not stable: %x vs %x", e.Bytes(), e2.Bytes())
		}
	})
}

func FuzzDecodeFileInfo(f *testing.F) {
	fuzzRoundTrip(f, DecodeFileInfo, EncodeFileInfo, false) // bools: any nonzero byte is true
}

func FuzzDecodeDirEntry(f *testing.F) {
	fuzzRoundTrip(f, DecodeDirEntry, EncodeDirEntry, false)
}

func FuzzDecodeMountConfig(f *testing.F) {
	fuzzRoundTrip(f, DecodeMountConfig, EncodeMountConfig, false)
}

func FuzzDecodeInstanceOptions(f *testing.F) {
	// The timeout passes through a float64, so only stability is checked.
	fuzzRoundTrip(f, DecodeInstanceOptions, EncodeInstanceOptions, false)
}

func FuzzDecodeSnapshotOptions(f *testing.F) {
	fuzzRoundTrip(f, DecodeSnapshotOptions, EncodeSnapshotOptions, true)
}

func FuzzDecodeDockerfileOptions(f *testing.F) {
	// Keys are re-encoded sorted and duplicates collapse, so only stability.
	fuzzRoundTrip(f, DecodeDockerfileOptions, EncodeDockerfileOptions, false)
}

func FuzzDecodeError(f *testing.F) {
	seedEncodings(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		ie, err := DecodeError(NewDecoder(b))
		if err != nil || ie == nil {
			return
		}
		_ = ie.Error()
		_ = ie.Unwrap()
		e := NewEncoder()
		encodeIPCError(e, ie)
		ie2, err := DecodeError(NewDecoder(e.Bytes()))
		if err != nil || *ie2 != *ie {
			t.Fatalf("error %+v does not round-trip: %+v %v", ie, ie2, err)
		}
	})
}

// FuzzServer feeds arbitrary bytes to a server as one client's stream and
// checks that the server neither panics nor hangs, and that whatever it
// writes back is a sequence of well-formed answers.
func FuzzServer(f *testing.F) {
	msg := func(typ uint16, payload []byte) []byte {
		var b bytes.Buffer
		WriteHeader(&b, Header{Type: typ, Length: uint32(len(payload))})
		b.Write(payload)
		return b.Bytes()
	}
	var hello Encoder
	hello.String(HelloMagic)
	hello.Uint32(ProtocolVersion)
	f.Add(msg(MsgHello, hello.Bytes()))
	f.Add(append(msg(msgEcho, []byte("x")), msg(msgFail, []byte("eof"))...))
	f.Add(msg(msgSeedEcho, []byte{0, 0, 0, 9, 'a'}))
	f.Add(msg(msgPanic, nil))
	f.Add(msg(0x0100, []byte{1, 2, 3}))
	f.Add([]byte{0x7f, 0, 0xff, 0xff, 0xff, 0xff})
	f.Add(msg(MsgHello, []byte{0, 0, 0, 1}))
	f.Fuzz(func(t *testing.T, in []byte) {
		tm := newTestMux(nil)
		close(tm.release) // blocking handlers return at once
		srv := NewServerListener(newPipeListener(), tm)
		client, server := socketPair(t)
		served := make(chan struct{})
		go func() { srv.ServeConn(server); close(served) }()

		// The client sends everything, then half-closes: the server sees
		// the end of its input after the last byte, answers what it
		// could parse, and closes, which ends the client's read.
		out := make(chan []byte, 1)
		go func() { b, _ := io.ReadAll(client); out <- b }()
		go func() {
			client.Write(in)
			client.CloseWrite()
		}()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Fatal("server did not finish")
		}
		srv.Close()
		answers := <-out
		client.Close()
		// Answers come in request order. A successful msgStream hands the
		// connection over to a raw echo: what follows its answer is
		// stream data, not answers.
		streamAt := -1
		for r, k := bytes.NewReader(in), 0; r.Len() > 0; k++ {
			h, err := ReadHeader(r)
			if err != nil || h.Length > MaxMessageSize || int64(h.Length) > int64(r.Len()) {
				break
			}
			if h.Type == msgStream {
				streamAt = k
				break
			}
			r.Seek(int64(h.Length), io.SeekCurrent)
		}
		for r, k := bytes.NewReader(answers), 0; r.Len() > 0; k++ {
			h, err := ReadHeader(r)
			if err != nil {
				t.Fatalf("malformed answer header: %v (answers %x)", err, answers)
			}
			if h.Type != MsgResponse && h.Type != MsgError {
				t.Fatalf("answer of type 0x%04x", h.Type)
			}
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(r, p); err != nil {
				t.Fatalf("truncated answer: %v", err)
			}
			if h.Type == MsgError {
				if _, err := DecodeError(NewDecoder(p)); err != nil {
					t.Fatalf("malformed error answer %x: %v", p, err)
				}
			}
			if k == streamAt && h.Type == MsgResponse {
				break // the rest is the stream
			}
		}
		for len(tm.entered) > 0 {
			<-tm.entered
		}
	})
}

// socketPair returns the two ends of a connected Unix stream socket pair,
// which, unlike net.Pipe, can be half-closed.
func socketPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]*net.UnixConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c.(*net.UnixConn)
	}
	return conns[0], conns[1]
}
