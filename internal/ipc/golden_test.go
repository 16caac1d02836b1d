package ipc

import (
	"bytes"
	"encoding/hex"
	"io/fs"
	"strings"
	"testing"
)

// unhex decodes a hex string that may contain spaces for readability.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestGoldenHeader(t *testing.T) {
	tests := []struct {
		h   Header
		hex string
	}{
		{Header{Type: MsgInstanceNew, Length: 0}, "0100 00000000"},
		{Header{Type: MsgFsReadFile, Length: 5}, "0203 00000005"},
		{Header{Type: MsgResponse, Length: 0x01020304}, "ff00 01020304"},
		{Header{Type: MsgError, Length: MaxMessageSize}, "ff01 04000000"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := WriteHeader(&buf, tt.h); err != nil {
			t.Fatalf("WriteHeader(%+v): %v", tt.h, err)
		}
		want := unhex(t, tt.hex)
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("WriteHeader(%+v) = %x, want %x", tt.h, buf.Bytes(), want)
		}
		got, err := ReadHeader(bytes.NewReader(want))
		if err != nil || got != tt.h {
			t.Errorf("ReadHeader(%x) = %+v, %v; want %+v", want, got, err, tt.h)
		}
	}
}

func TestGoldenEncoder(t *testing.T) {
	tests := []struct {
		name string
		enc  func(e *Encoder)
		hex  string
	}{
		{"Uint8", func(e *Encoder) { e.Uint8(0xab) }, "ab"},
		{"Uint16", func(e *Encoder) { e.Uint16(0x0102) }, "0102"},
		{"Uint32", func(e *Encoder) { e.Uint32(0x01020304) }, "01020304"},
		{"Uint64", func(e *Encoder) { e.Uint64(0x0102030405060708) }, "0102030405060708"},
		{"Int32", func(e *Encoder) { e.Int32(-2) }, "fffffffe"},
		{"Int64", func(e *Encoder) { e.Int64(-2) }, "fffffffffffffffe"},
		{"BoolTrue", func(e *Encoder) { e.Bool(true) }, "01"},
		{"BoolFalse", func(e *Encoder) { e.Bool(false) }, "00"},
		{"String", func(e *Encoder) { e.String("hi") }, "00000002 6869"},
		{"StringEmpty", func(e *Encoder) { e.String("") }, "00000000"},
		{"WriteBytes", func(e *Encoder) { e.WriteBytes([]byte{0, 0xff}) }, "00000002 00ff"},
		{"StringSlice", func(e *Encoder) { e.StringSlice([]string{"a", "bc"}) }, "00000002 00000001 61 00000002 6263"},
		{"StringSliceNil", func(e *Encoder) { e.StringSlice(nil) }, "00000000"},
		{"Sequence", func(e *Encoder) { e.Uint8(1); e.String("x"); e.Bool(true) }, "01 00000001 78 01"},
		{"Reset", func(e *Encoder) { e.Uint32(7); e.Reset(); e.Uint8(9) }, "09"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEncoder()
			tt.enc(e)
			if want := unhex(t, tt.hex); !bytes.Equal(e.Bytes(), want) {
				t.Errorf("got %x, want %x", e.Bytes(), want)
			}
		})
	}
}

func TestGoldenStructures(t *testing.T) {
	tests := []struct {
		name string
		enc  func(e *Encoder)
		hex  string
	}{
		{"FileInfo", func(e *Encoder) {
			EncodeFileInfo(e, FileInfo{Name: "f", Size: 3, Mode: fs.ModeDir | 0o755, ModTime: 0x10, IsDir: true})
		}, "00000001 66 0000000000000003 800001ed 0000000000000010 01 00"},
		{"FileInfoSymlink", func(e *Encoder) {
			EncodeFileInfo(e, FileInfo{Name: "l", Mode: fs.ModeSymlink | 0o777, ModTime: -1, IsSymlink: true})
		}, "00000001 6c 0000000000000000 080001ff ffffffffffffffff 00 01"},
		{"DirEntry", func(e *Encoder) {
			EncodeDirEntry(e, DirEntry{Name: "d", IsDir: true, Mode: fs.ModeDir})
		}, "00000001 64 01 80000000"},
		{"MountConfig", func(e *Encoder) {
			EncodeMountConfig(e, MountConfig{Tag: "t", HostPath: "/h", Writable: true})
		}, "00000001 74 00000002 2f68 01"},
		{"InstanceOptions", func(e *Encoder) {
			EncodeInstanceOptions(e, InstanceOptions{MemoryMB: 256, CPUs: 2, TimeoutSecs: 1.5, User: "u", EnableDmesg: true,
				Mounts: []MountConfig{{Tag: "a", HostPath: "b"}}})
		}, "0000000000000100 00000002 0000000059682f00 00000001 75 01 00000001 00000001 61 00000001 62 00"},
		{"InstanceOptionsEmpty", func(e *Encoder) {
			EncodeInstanceOptions(e, InstanceOptions{})
		}, "0000000000000000 00000000 0000000000000000 00000000 00 00000000"},
		{"SnapshotOptions", func(e *Encoder) {
			EncodeSnapshotOptions(e, SnapshotOptions{Excludes: []string{"*.log"}, CacheDir: "/c"})
		}, "00000001 00000005 2a2e6c6f67 00000002 2f63"},
		{"DockerfileOptions", func(e *Encoder) {
			EncodeDockerfileOptions(e, DockerfileOptions{Dockerfile: []byte("FROM x"), ContextDir: "/ctx", CacheDir: "/c",
				BuildArgs: map[string]string{"B": "2", "A": "1"}})
		}, "00000006 46524f4d2078 00000004 2f637478 00000002 2f63 00000002 00000001 41 00000001 31 00000001 42 00000001 32"},
		{"Error", func(e *Encoder) {
			EncodeError(e, ErrCodeNotRunning, "gone", "wait", "/p")
		}, "03 00000004 676f6e65 00000004 77616974 00000002 2f70"},
		{"ErrorWithErrno", func(e *Encoder) {
			encodeIPCError(e, &IPCError{Code: ErrCodeNotExist, Message: "m", Op: "o", Path: "p", Errno: 2})
		}, "0a 00000001 6d 00000001 6f 00000001 70 00000002"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEncoder()
			tt.enc(e)
			if want := unhex(t, tt.hex); !bytes.Equal(e.Bytes(), want) {
				t.Errorf("got  %x\nwant %x", e.Bytes(), want)
			}
		})
	}
}

func TestGoldenResponseBuilder(t *testing.T) {
	got := NewResponseBuilder().Success().
		Uint8(1).Uint16(2).Uint32(3).Uint64(4).Int32(-1).Int64(-1).Bool(true).
		String("s").Bytes([]byte{0xee}).
		FileInfo(FileInfo{Name: "n", Size: 1, Mode: 0o644, ModTime: 2}).
		Build()
	want := unhex(t, "00 01 0002 00000003 0000000000000004 ffffffff ffffffffffffffff 01 00000001 73 00000001 ee"+
		" 00000001 6e 0000000000000001 000001a4 0000000000000002 00 00")
	if !bytes.Equal(got, want) {
		t.Errorf("got  %x\nwant %x", got, want)
	}
	ext := NewResponseBuilder().Success().StringSlice([]string{"a"}).DirEntry(DirEntry{Name: "b"}).Build()
	if want := unhex(t, "00 00000001 00000001 61 00000001 62 00 00000000"); !bytes.Equal(ext, want) {
		t.Errorf("extensions: got %x, want %x", ext, want)
	}
}

// TestGoldenSeedNumbers pins the seed's message numbers and error codes.
func TestGoldenSeedNumbers(t *testing.T) {
	nums := map[uint16]uint16{
		MsgInstanceNew: 0x0100, MsgInstanceClose: 0x0101, MsgInstanceWait: 0x0102, MsgInstanceID: 0x0103,
		MsgInstanceIsRunning: 0x0104, MsgInstanceSetConsole: 0x0105, MsgInstanceSetNetwork: 0x0106, MsgInstanceExec: 0x0107,
		MsgFsOpen: 0x0200, MsgFsCreate: 0x0201, MsgFsOpenFile: 0x0202, MsgFsReadFile: 0x0203, MsgFsWriteFile: 0x0204,
		MsgFsStat: 0x0205, MsgFsLstat: 0x0206, MsgFsRemove: 0x0207, MsgFsRemoveAll: 0x0208, MsgFsMkdir: 0x0209,
		MsgFsMkdirAll: 0x020A, MsgFsRename: 0x020B, MsgFsSymlink: 0x020C, MsgFsReadlink: 0x020D, MsgFsReadDir: 0x020E,
		MsgFsChmod: 0x020F, MsgFsChown: 0x0210, MsgFsChtimes: 0x0211, MsgFsSnapshot: 0x0212,
		MsgFileClose: 0x0300, MsgFileRead: 0x0301, MsgFileWrite: 0x0302, MsgFileSeek: 0x0303, MsgFileSync: 0x0304,
		MsgFileTruncate: 0x0305, MsgFileStat: 0x0306, MsgFileName: 0x0307,
		MsgCmdNew: 0x0400, MsgCmdEntrypoint: 0x0401, MsgCmdFree: 0x0402, MsgCmdSetDir: 0x0403, MsgCmdSetEnv: 0x0404,
		MsgCmdGetEnv: 0x0405, MsgCmdEnviron: 0x0406, MsgCmdStart: 0x0407, MsgCmdWait: 0x0408, MsgCmdRun: 0x0409,
		MsgCmdOutput: 0x040A, MsgCmdCombinedOutput: 0x040B, MsgCmdExitCode: 0x040C, MsgCmdKill: 0x040D,
		MsgNetListen: 0x0500, MsgListenerAccept: 0x0501, MsgListenerClose: 0x0502, MsgListenerAddr: 0x0503,
		MsgConnRead: 0x0504, MsgConnWrite: 0x0505, MsgConnClose: 0x0506, MsgConnLocalAddr: 0x0507, MsgConnRemoteAddr: 0x0508,
		MsgSnapshotCacheKey: 0x0600, MsgSnapshotParent: 0x0601, MsgSnapshotClose: 0x0602, MsgSnapshotAsSource: 0x0603,
		MsgBuildDockerfile: 0x0700, MsgResponse: 0xFF00, MsgError: 0xFF01,
	}
	for got, want := range nums {
		if got != want {
			t.Errorf("message number 0x%04x, want 0x%04x", got, want)
		}
	}
	if len(nums) != 65 {
		t.Errorf("%d distinct seed message numbers, want 65 (a duplicate value?)", len(nums))
	}
	codes := []struct{ got, want int }{
		{ErrCodeOK, 0}, {ErrCodeInvalidHandle, 1}, {ErrCodeInvalidArgument, 2}, {ErrCodeNotRunning, 3},
		{ErrCodeAlreadyClosed, 4}, {ErrCodeTimeout, 5}, {ErrCodeHypervisorUnavailable, 6}, {ErrCodeIO, 7},
		{ErrCodeNetwork, 8}, {ErrCodeCancelled, 9}, {ErrCodeUnknown, 99}, {HeaderSize, 6},
	}
	for _, c := range codes {
		if c.got != c.want {
			t.Errorf("constant %d, want %d", c.got, c.want)
		}
	}
}
