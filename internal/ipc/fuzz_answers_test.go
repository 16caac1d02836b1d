package ipc

import "testing"

// The answers and specs a peer that may be hostile sends: an agent's exit
// status and stat (from inside a sandbox), a command spec and an instance
// spec (from a helper's client). Each decoder must refuse what it cannot
// read, never panic, and give back what it accepts unchanged.

// seedWith adds the encodings of values to the corpus.
func seedWith[T any](f *testing.F, enc func(*Encoder, T), values ...T) {
	for _, v := range values {
		e := NewEncoder()
		enc(e, v)
		f.Add(e.Bytes())
	}
}

func FuzzDecodeExitStatus(f *testing.F) {
	seedWith(f, EncodeExitStatus, ExitStatus{}, ExitStatus{Pid: 7, Exited: true, Code: 3, UserNs: 1e6, SysNs: 2e6, MaxRSSKB: 1024},
		ExitStatus{Pid: -1, Code: -1, Signal: 9, CoreDump: true})
	fuzzRoundTrip(f, DecodeExitStatus, EncodeExitStatus, false) // bools: any nonzero byte is true
}

func FuzzDecodeStat(f *testing.F) {
	seedWith(f, EncodeStat, Stat{}, Stat{Uid: 1000, Gid: 1000, Nlink: 2, Ino: 99, Dev: 0x801, Blocks: 8, MtimeNs: 1e18})
	fuzzRoundTrip(f, DecodeStat, EncodeStat, true)
}

func FuzzDecodeCmdSpec(f *testing.F) {
	seedWith(f, EncodeCmdSpec, CmdSpec{}, CmdSpec{Path: "sh", Args: []string{"sh", "-c", "echo hi"}, Env: []string{"A=b"},
		Dir: "/tmp", User: "1000:1000", Stdio: [3]StdioSpec{{Mode: 1, FileIndex: 0}, {Mode: 2, FileIndex: -1}, {}}, Pty: true, Rows: 24, Cols: 80, WantFD: true})
	fuzzRoundTrip(f, DecodeCmdSpec, EncodeCmdSpec, false)
}

func FuzzDecodeInstanceSpec(f *testing.F) {
	seedWith(f, EncodeInstanceSpec, InstanceSpec{}, InstanceSpec{Layers: []string{"/a", "/b"}, Hostname: "h", StateRoot: "/s",
		Backend: "vm", CPUsMilli: 1500, PidsMax: 64, NoFile: 1024, DiskMB: 10, Kernel: "/k", CacheDir: "/c", WantFD: true, Network: true})
	fuzzRoundTrip(f, DecodeInstanceSpec, EncodeInstanceSpec, false)
}
