package ipc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math"
	"net"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"syscall"
	"testing"
)

func TestRoundTripScalars(t *testing.T) {
	e := NewEncoder()
	e.Uint8(200)
	e.Uint16(65000)
	e.Uint32(math.MaxUint32)
	e.Uint64(math.MaxUint64)
	e.Int32(math.MinInt32)
	e.Int64(math.MinInt64)
	e.Bool(true)
	e.String("héllo")
	e.WriteBytes([]byte{1, 2, 3})
	e.StringSlice([]string{"", "x"})
	d := NewDecoder(e.Bytes())
	check := func(got, want any, err error) {
		t.Helper()
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v, %v; want %v", got, err, want)
		}
	}
	u8, err := d.Uint8()
	check(u8, uint8(200), err)
	u16, err := d.Uint16()
	check(u16, uint16(65000), err)
	u32, err := d.Uint32()
	check(u32, uint32(math.MaxUint32), err)
	u64, err := d.Uint64()
	check(u64, uint64(math.MaxUint64), err)
	i32, err := d.Int32()
	check(i32, int32(math.MinInt32), err)
	i64, err := d.Int64()
	check(i64, int64(math.MinInt64), err)
	b, err := d.Bool()
	check(b, true, err)
	s, err := d.String()
	check(s, "héllo", err)
	bs, err := d.Bytes()
	check(bs, []byte{1, 2, 3}, err)
	ss, err := d.StringSlice()
	check(ss, []string{"", "x"}, err)
	if d.Remaining() != 0 {
		t.Fatalf("%d bytes left", d.Remaining())
	}
	if _, err := d.Uint8(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read past end: %v", err)
	}
}

func TestDecoderBytesCopies(t *testing.T) {
	e := NewEncoder()
	e.WriteBytes([]byte("abc"))
	buf := e.Bytes()
	got, _ := NewDecoder(buf).Bytes()
	borrowed, _ := NewDecoder(buf).BorrowBytes()
	buf[4] = 'X'
	if string(got) != "abc" {
		t.Errorf("Bytes aliases the input: %q", got)
	}
	if string(borrowed) != "Xbc" {
		t.Errorf("BorrowBytes copied: %q", borrowed)
	}
}

func TestRoundTripStructures(t *testing.T) {
	fi := FileInfo{Name: "a/b", Size: 1 << 40, Mode: fs.ModeSymlink | fs.ModeSetuid | 0o4755, ModTime: -5, IsDir: false, IsSymlink: true}
	de := DirEntry{Name: "dir", IsDir: true, Mode: fs.ModeDir | fs.ModeSticky}
	mc := MountConfig{Tag: "work", HostPath: "/srv/x", Writable: true}
	io := InstanceOptions{MemoryMB: 1024, CPUs: -1, TimeoutSecs: 2.25, User: "1000:1000", EnableDmesg: true,
		Mounts: []MountConfig{mc, {Tag: "ro", HostPath: "/r"}}}
	so := SnapshotOptions{Excludes: []string{"/tmp/**", "*.o"}, CacheDir: "/cache"}
	do := DockerfileOptions{Dockerfile: []byte("FROM scratch\n"), ContextDir: "/c", CacheDir: "/k", BuildArgs: map[string]string{"X": "1", "Y": ""}}

	e := NewEncoder()
	EncodeFileInfo(e, fi)
	EncodeDirEntry(e, de)
	EncodeMountConfig(e, mc)
	EncodeInstanceOptions(e, io)
	EncodeSnapshotOptions(e, so)
	EncodeDockerfileOptions(e, do)
	d := NewDecoder(e.Bytes())

	gfi, err := DecodeFileInfo(d)
	if err != nil || gfi != fi {
		t.Errorf("FileInfo: %+v, %v", gfi, err)
	}
	gde, err := DecodeDirEntry(d)
	if err != nil || gde != de {
		t.Errorf("DirEntry: %+v, %v", gde, err)
	}
	gmc, err := DecodeMountConfig(d)
	if err != nil || gmc != mc {
		t.Errorf("MountConfig: %+v, %v", gmc, err)
	}
	gio, err := DecodeInstanceOptions(d)
	if err != nil || !reflect.DeepEqual(gio, io) {
		t.Errorf("InstanceOptions: %+v, %v", gio, err)
	}
	gso, err := DecodeSnapshotOptions(d)
	if err != nil || !reflect.DeepEqual(gso, so) {
		t.Errorf("SnapshotOptions: %+v, %v", gso, err)
	}
	gdo, err := DecodeDockerfileOptions(d)
	if err != nil || !reflect.DeepEqual(gdo, do) {
		t.Errorf("DockerfileOptions: %+v, %v", gdo, err)
	}
	if d.Remaining() != 0 {
		t.Errorf("%d bytes left", d.Remaining())
	}
}

func TestInstanceOptionsTimeoutSaturates(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want uint64
	}{{-1, 0}, {math.NaN(), 0}, {math.Inf(1), math.MaxUint64}, {1e30, math.MaxUint64}, {0.000000001, 1},
		{1e6 + 0.0000001234, 1_000_000_000_000_000}, {2e9, math.MaxUint64}} {
		if got := secondsToNanos(tc.in); got != tc.want {
			t.Errorf("secondsToNanos(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// TestDecodeTruncated cuts every encoded structure at every length and
// expects an error, never a panic or a wrong success.
func TestDecodeTruncated(t *testing.T) {
	type decodeFn func(*Decoder) error
	cases := []struct {
		name string
		enc  func(*Encoder)
		dec  decodeFn
	}{
		{"FileInfo", func(e *Encoder) { EncodeFileInfo(e, FileInfo{Name: "n", Size: 1}) },
			func(d *Decoder) error { _, err := DecodeFileInfo(d); return err }},
		{"DirEntry", func(e *Encoder) { EncodeDirEntry(e, DirEntry{Name: "n"}) },
			func(d *Decoder) error { _, err := DecodeDirEntry(d); return err }},
		{"MountConfig", func(e *Encoder) { EncodeMountConfig(e, MountConfig{Tag: "t", HostPath: "h"}) },
			func(d *Decoder) error { _, err := DecodeMountConfig(d); return err }},
		{"InstanceOptions", func(e *Encoder) {
			EncodeInstanceOptions(e, InstanceOptions{User: "u", Mounts: []MountConfig{{Tag: "t"}}})
		}, func(d *Decoder) error { _, err := DecodeInstanceOptions(d); return err }},
		{"SnapshotOptions", func(e *Encoder) { EncodeSnapshotOptions(e, SnapshotOptions{Excludes: []string{"x"}, CacheDir: "c"}) },
			func(d *Decoder) error { _, err := DecodeSnapshotOptions(d); return err }},
		{"DockerfileOptions", func(e *Encoder) {
			EncodeDockerfileOptions(e, DockerfileOptions{Dockerfile: []byte("F"), BuildArgs: map[string]string{"a": "b"}})
		}, func(d *Decoder) error { _, err := DecodeDockerfileOptions(d); return err }},
		{"Error", func(e *Encoder) { EncodeError(e, 3, "m", "o", "p") },
			func(d *Decoder) error { _, err := DecodeError(d); return err }},
	}
	for _, c := range cases {
		e := NewEncoder()
		c.enc(e)
		full := e.Bytes()
		if err := c.dec(NewDecoder(full)); err != nil {
			t.Fatalf("%s: full input: %v", c.name, err)
		}
		for n := 0; n < len(full); n++ {
			if err := c.dec(NewDecoder(full[:n])); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("%s cut at %d of %d: err = %v, want io.ErrUnexpectedEOF", c.name, n, len(full), err)
			}
		}
	}
}

// TestDecodeHugeCounts checks that counts and lengths far beyond the input
// are refused before anything is allocated.
func TestDecodeHugeCounts(t *testing.T) {
	huge := []byte{0xff, 0xff, 0xff, 0xff}
	for name, fn := range map[string]func(*Decoder) error{
		"String":      func(d *Decoder) error { _, err := d.String(); return err },
		"Bytes":       func(d *Decoder) error { _, err := d.Bytes(); return err },
		"StringSlice": func(d *Decoder) error { _, err := d.StringSlice(); return err },
		"Snapshot":    func(d *Decoder) error { _, err := DecodeSnapshotOptions(d); return err },
	} {
		input := append(huge, 1, 2, 3)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if err := fn(NewDecoder(input)); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: %v", name, err)
		}
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Errorf("%s allocated %d bytes for a hostile length", name, n)
		}
	}
	// InstanceOptions with a mount count of 2^32-1 and nothing behind it.
	e := NewEncoder()
	e.Uint64(0)
	e.Int32(0)
	e.Uint64(0)
	e.String("")
	e.Bool(false)
	e.Uint32(math.MaxUint32)
	if _, err := DecodeInstanceOptions(NewDecoder(e.Bytes())); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("InstanceOptions with a huge mount count: %v", err)
	}
}

func TestReadHeaderLimits(t *testing.T) {
	if _, err := ReadHeader(bytes.NewReader(nil)); err != io.EOF {
		t.Errorf("empty: %v, want io.EOF", err)
	}
	if _, err := ReadHeader(bytes.NewReader([]byte{1, 0, 0})); err != io.ErrUnexpectedEOF {
		t.Errorf("short: %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := ReadHeader(bytes.NewReader([]byte{1, 0, 0x04, 0, 0, 1})); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("oversized: %v, want ErrMessageTooLarge", err)
	}
	if err := WriteHeader(io.Discard, Header{Length: MaxMessageSize + 1}); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("WriteHeader oversized: %v", err)
	}
}

// TestErrorIdentity checks that every sentinel survives encoding: what
// errors.Is said of the original it says of the decoded error.
func TestErrorIdentity(t *testing.T) {
	targets := []error{
		fs.ErrNotExist, fs.ErrExist, fs.ErrPermission, fs.ErrClosed, fs.ErrInvalid, io.EOF, io.ErrUnexpectedEOF,
		context.Canceled, context.DeadlineExceeded, os.ErrDeadlineExceeded, net.ErrClosed, errors.ErrUnsupported,
		exec.ErrNotFound, exec.ErrWaitDelay, os.ErrProcessDone,
		ErrInvalidHandle, ErrNotRunning, ErrAlreadyClosed, ErrTimeout, ErrHypervisorUnavailable, ErrCancelled,
		ErrOutOfMemory, ErrVersionMismatch,
	}
	originals := append([]error{}, targets...)
	originals = append(originals,
		&fs.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT},
		&fs.PathError{Op: "mkdir", Path: "/x", Err: syscall.EEXIST},
		&fs.PathError{Op: "open", Path: "/x", Err: syscall.EACCES},
		&fs.PathError{Op: "read", Path: "/d", Err: syscall.EISDIR},
		&os.LinkError{Op: "rename", Old: "a", New: "b", Err: syscall.ENOTEMPTY},
		&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED},
		errors.New("plain"),
	)
	extra := []error{syscall.ENOENT, syscall.EISDIR, syscall.ENOTEMPTY, syscall.ECONNREFUSED, ErrTransport}
	for _, orig := range originals {
		e := NewEncoder()
		encodeIPCError(e, ToIPCError(orig))
		got, err := DecodeError(NewDecoder(e.Bytes()))
		if err != nil {
			t.Fatalf("%v: decode: %v", orig, err)
		}
		for _, target := range append(append([]error{}, targets...), extra...) {
			if want, have := errors.Is(orig, target), errors.Is(got, target); want != have {
				t.Errorf("errors.Is(%q, %v): original %v, after the wire %v", orig, target, want, have)
			}
		}
	}
	pe := ToIPCError(&fs.PathError{Op: "open", Path: "/etc/x", Err: syscall.ENOENT})
	if pe.Op != "open" || pe.Path != "/etc/x" || pe.Message != "no such file or directory" || pe.Errno != uint32(syscall.ENOENT) {
		t.Errorf("PathError converted to %+v", pe)
	}
	if got := pe.Error(); got != "open: /etc/x: no such file or directory" {
		t.Errorf("Error() = %q", got)
	}
	if got := pe.Bare().Error(); got != "no such file or directory" {
		t.Errorf("Bare().Error() = %q", got)
	}
	if !(&IPCError{Code: ErrCodeIOTimeout}).Timeout() {
		t.Error("an I/O timeout does not report Timeout()")
	}
}

func TestTransportErrorIsDistinct(t *testing.T) {
	te := &TransportError{Op: "read", Err: io.EOF}
	if !errors.Is(te, ErrTransport) {
		t.Error("TransportError does not match ErrTransport")
	}
	for _, target := range []error{io.EOF, fs.ErrNotExist, ErrNotRunning, io.ErrUnexpectedEOF} {
		if errors.Is(te, target) {
			t.Errorf("TransportError matches %v", target)
		}
	}
	if errors.Is(ToIPCError(fs.ErrNotExist), ErrTransport) {
		t.Error("a remote error matches ErrTransport")
	}
}

func TestDecodeErrorOK(t *testing.T) {
	ie, err := DecodeError(NewDecoder([]byte{0, 'x'}))
	if ie != nil || err != nil {
		t.Errorf("code 0 decoded as %v, %v", ie, err)
	}
}

// TestDirAnsNames: a directory listing names its entries as os.ReadDir
// does, one path element each; a peer's answer that names one "../x", "a/b",
// ".", ".." or nothing is malformed, so that a caller joining the names to
// the directory stays in it.
func TestDirAnsNames(t *testing.T) {
	decode := func(name string) error {
		var e Encoder
		(&DirAns{Entries: []DirEntry{{Name: "ok"}, {Name: name}}}).Encode(&e)
		var m DirAns
		return m.Decode(NewDecoder(e.Bytes()))
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", "/", "a\x00b"} {
		if err := decode(bad); err == nil {
			t.Errorf("an entry named %q was accepted", bad)
		}
	}
	for _, good := range []string{"...", "a\\b", ".hidden", "x..y", "naïve"} {
		if err := decode(good); err != nil {
			t.Errorf("an entry named %q: %v", good, err)
		}
	}
}
