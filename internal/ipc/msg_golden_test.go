package ipc

import (
	"bytes"
	"io/fs"
	"reflect"
	"testing"
	"time"

	"github.com/ccsandbox/sandbox/internal/testutil/wiregolden"
)

// The typed bodies of every golden message (internal/ipc/testdata/
// wire.golden): each must encode to the golden bytes and decode from them
// to itself, and its types must be those the table gives its number.

var (
	gInfo    = FileInfo{Name: "f", Size: 5, Mode: 0o640, ModTime: 1000}
	gDirInfo = FileInfo{Name: "etc", Size: 4096, Mode: fs.ModeDir | 0o755, ModTime: 2000, IsDir: true}
	gStat    = Stat{Uid: 1, Gid: 2, Nlink: 3, Ino: 4, Dev: 5, Rdev: 6, Blocks: 7, AtimeNs: 8, MtimeNs: 1000e9, CtimeNs: 10}
	gExit    = ExitStatus{Pid: 42, Exited: true, Code: 3, UserNs: 11, SysNs: 12, MaxRSSKB: 13}
	gDir     = DirAns{Entries: []DirEntry{{Name: "a"}, {Name: "b", IsDir: true, Mode: fs.ModeDir}}}
	gConn    = ConnAns{Local: "127.0.0.1:8080", Remote: "127.0.0.1:9999"}
	zeroNs   = time.Time{}.UnixNano()
	gParent  = []byte(`{"Key":"pk","Layers":["sha256:` + string(bytes.Repeat([]byte("ab"), 32)) + `"],"Host":"","Config":{"a":1}}`)
	gNet     = NetworkReq{Enabled: true, Ifname: "eth0", Addr: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: "10.0.2.2", MTU: 65000}
	gNetTap  = NetworkReq{Enabled: true, Ifname: "eth0", Addr: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: "10.0.2.2", MTU: 65000, CreateTap: true}
	gStdioNS = [3]StdioSpec{{Mode: StdioNull}, {Mode: StdioStream}, {Mode: StdioNull}}
)

// goldenBodies gives the request and answer bodies of each golden label.
var goldenBodies = map[string][2]Msg{
	"stat":             {&PathReq{"/etc/passwd"}, &StatAns{gInfo, gStat}},
	"lstat":            {&PathReq{"/etc/l"}, &StatAns{gInfo, gStat}},
	"readfile":         {&PathReq{"/etc/hostname"}, &BytesAns{[]byte("data")}},
	"readdir":          {&PathReq{"/etc"}, &gDir},
	"readlink":         {&PathReq{"/l"}, &StringAns{"target"}},
	"writefile":        {&WriteFileReq{"/w", []byte("hello"), 0o640}, &Empty{}},
	"mkdir":            {&PathModeReq{"/d", 0o750}, &Empty{}},
	"mkdirall":         {&PathModeReq{"/d/e/f", 0o700}, &Empty{}},
	"remove":           {&PathReq{"/r"}, &Empty{}},
	"removeall":        {&PathReq{"/ra"}, &Empty{}},
	"chmod":            {&PathModeReq{"/c", fs.ModeSetuid | 0o4755}, &Empty{}},
	"chown":            {&ChownReq{"/o", 1000, 1001, false}, &Empty{}},
	"lchown":           {&ChownReq{"/o", -1, 5, true}, &Empty{}},
	"chtimes":          {&ChtimesReq{"/t", 1e9 + 2, zeroNs, ChtimesKeepMtime}, &Empty{}},
	"chtimes-m":        {&ChtimesReq{"/t", zeroNs, 3e9 + 4, ChtimesKeepAtime}, &Empty{}},
	"rename":           {&PathPairReq{"/a", "/b"}, &Empty{}},
	"symlink":          {&PathPairReq{"../target", "/s"}, &Empty{}},
	"openfile":         {&OpenFileReq{"/f", 0x242, 0o600, false}, &OpenAns{7, gInfo, gStat}},
	"file-read":        {&ReadReq{7, 10}, &BytesAns{[]byte("data")}},
	"file-readat":      {&ReadAtReq{7, 100, 4}, &BytesAns{[]byte("data")}},
	"file-write":       {&WriteReq{7, []byte("abc")}, &CountAns{3}},
	"file-writeat":     {&WriteAtReq{7, 5, []byte("xy")}, &CountAns{2}},
	"file-seek":        {&SeekReq{7, 3, 1}, &SeekAns{12}},
	"file-stat":        {&HandleReq{7}, &StatAns{gInfo, gStat}},
	"file-sync":        {&HandleReq{7}, &Empty{}},
	"file-truncate":    {&TruncateReq{7, 9}, &Empty{}},
	"file-close":       {&HandleReq{7}, &Empty{}},
	"open-dir":         {&OpenFileReq{"/etc", 0, 0, false}, &OpenAns{9, gDirInfo, gStat}},
	"file-readdir":     {&ReadDirReq{9, 5}, &gDir},
	"file-readdir-all": {&ReadDirReq{9, -1}, &gDir},
	"openfile-fd":      {&OpenFileReq{"/f", 0, 0, true}, &OpenAns{7, gInfo, gStat}},
	"cmd-spawn-streamed": {&CmdSpec{Path: "sh", Args: []string{"sh", "-c", "echo hi"}, Env: []string{"A=b"}, Dir: "/tmp",
		User: "1000:1000", Stdio: gStdioNS}, &SpawnAns{5, 42}},
	"cmd-spawn-streamed.2": {&AttachReq{5, StreamStdout}, &Empty{}},
	"cmd-signal":           {&KillReq{5, 15, false}, &Empty{}},
	"cmd-kill-tree":        {&KillReq{5, 9, true}, &Empty{}},
	"cmd-wait":             {&WaitReq{5, WaitRelease}, &gExit},
	"cmd-spawn-tty": {&CmdSpec{Path: "sh", Args: []string{"sh"}, Env: []string{"PATH=/bin"},
		Stdio: [3]StdioSpec{{Mode: StdioPty}, {Mode: StdioPty}, {Mode: StdioPty}}, Pty: true, Rows: 24, Cols: 80}, &SpawnAns{5, 42}},
	"cmd-spawn-tty.2":    {&AttachReq{5, StreamPty}, &Empty{}},
	"cmd-setconsolesize": {&ConsoleSizeReq{5, 30, 100}, &Empty{}},
	"cmd-wait-tty":       {&WaitReq{5, WaitRelease}, &gExit},
	"cmd-run": {&CmdSpec{Path: "true", Args: []string{"true"}, Env: []string{"PATH=/bin"},
		Stdio: [3]StdioSpec{{Mode: StdioNull}, {Mode: StdioFile}, {Mode: StdioFile}}, WantFD: true}, &RunAns{42, gExit}},
	"cmd-run-null":      {&CmdSpec{Path: "true", Args: []string{"true"}, Env: []string{"PATH=/bin"}, WantFD: true}, &RunAns{42, gExit}},
	"cmd-spawn-fd":      {&CmdSpec{Path: "sleep", Args: []string{"sleep", "1"}, Env: []string{"PATH=/bin"}, WantFD: true}, &SpawnAns{5, 42}},
	"cmd-wait-fd":       {&WaitReq{5, WaitRelease}, &gExit},
	"listen":            {&ListenReq{"tcp", "127.0.0.1:8080", false}, &ListenAns{3, "127.0.0.1:8080"}},
	"accept":            {&HandleReq{3}, &gConn},
	"listener-close":    {&HandleReq{3}, &Empty{}},
	"listen-unix":       {&ListenReq{"unix", "/run/s.sock", false}, &ListenAns{3, "127.0.0.1:8080"}},
	"listen-fd":         {&ListenReq{"tcp", ":0", true}, &ListenAns{3, "127.0.0.1:8080"}},
	"dial":              {&DialReq{"tcp", "127.0.0.1:80", 0, false}, &gConn},
	"dial-fd":           {&DialReq{"udp", "10.0.0.1:53", 0, true}, &gConn},
	"listenpacket":      {&ListenReq{"udp", "127.0.0.1:53", false}, &StringAns{"127.0.0.1:53"}},
	"listenpacket-fd":   {&ListenReq{"unixgram", "/run/g", true}, &StringAns{"127.0.0.1:53"}},
	"setnetwork-up":     {&gNet, &Empty{}},
	"setnetwork-down":   {&NetworkReq{Ifname: "eth0"}, &Empty{}},
	"setnetwork-tap":    {&gNetTap, &Empty{}},
	"helper-openlink":   {&LinkReq{"eth0"}, &BoolAns{false}},
	"helper-stats":      {&Empty{}, &StatsAns{2}},
	"helper-settimeout": {&TimeoutReq{1.5e9}, &Empty{}},
	"helper-snapshot": {&SnapshotReq{SnapshotOptions{Excludes: []string{"/tmp/**", "*.log"}, CacheDir: "/cache"}, gParent},
		&SnapshotAns{[]byte(`{"Key":"k"}`)}},
	"helper-wait":  {&Empty{}, &Empty{}},
	"helper-close": {&Empty{}, &Empty{}},
	"hello":        {&HelloReq{HelloMagic, ProtocolVersion}, &HelloAns{ProtocolVersion, "pid 1"}},
	"isrunning":    {&Empty{}, &BoolAns{true}},
	"instance-new": {&NewReq{
		InstanceOptions{MemoryMB: 512, CPUs: 1, TimeoutSecs: 30, Mounts: []MountConfig{{Tag: "/mnt", HostPath: "/srv", Writable: true}}},
		InstanceSpec{Layers: []string{"/l/1", "/l/2"}, Hostname: "h", StateRoot: "/s", Backend: "ns", CPUsMilli: 1500, PidsMax: 64,
			NoFile: 1024, DiskMB: 10, Kernel: "/k", CacheDir: "/c", WantFD: true, Network: true}},
		&NewAns{"sb-1", 1234, true, true}},
	"instance-id": {&Empty{}, &StringAns{"sb-1"}},
	"fs-open":     {&OpenReq{"/f", true}, &OpenAns{7, gInfo, gStat}},
	"fs-create":   {&OpenReq{"/f", false}, &OpenAns{7, gInfo, gStat}},
	"file-name":   {&HandleReq{7}, &StringAns{"/f"}},
	"cmd-new": {&CmdSpec{Path: "sh", Args: []string{"sh", "-c", "echo hi"}, Env: []string{"A=b"}, Dir: "/tmp", User: "1000:1000",
		Stdio: [3]StdioSpec{{Mode: StdioNull}, {Mode: StdioFile}, {Mode: StdioStream}}, WantFD: true}, &HandleAns{5}},
	"cmd-start":      {&HandleReq{5}, &PidAns{42}},
	"cmd-free":       {&HandleReq{5}, &Empty{}},
	"cmd-wait-keep":  {&WaitReq{5, 0}, &ExitStatus{Pid: 42, Code: -1, Signal: 9, CoreDump: true}},
	"listener-addr":  {&HandleReq{3}, &StringAns{"127.0.0.1:8080"}},
	"agent-snapshot": {&SnapshotOptions{Excludes: []string{"/tmp/**"}}, &Empty{}},
	"remote-attach":  {&InstanceAttachReq{"sb-1"}, &Empty{}},
	"fs-writestream": {&WriteStreamReq{"/big", 0o644, 100 << 20}, &Empty{}},
	"fs-readstream":  {&PathReq{"/big"}, &ReadStreamAns{100 << 20}},
	"remote-new": {&RemoteNewReq{Image: PullReq{"registry:5000/x:1", "linux/amd64", 1, true}, Digest: "sha256:ab", Backend: "ns", Hostname: "h",
		MemoryMB: 256, CPUsMilli: 500, PidsMax: 64, NoFile: 1024, DiskMB: 10, TimeoutNs: 3e9, Mounts: []RemoteMount{{"/srv/data", "/data", true}}, Network: true},
		&RemoteNewAns{"sb-1", []byte(`{"os":"linux"}`)}},
	"remote-pull":     {&PullReq{"busybox", "", 0, false}, &PullAns{"sha256:ab", "index.docker.io/library/busybox:latest", []byte(`{"os":"linux"}`), []string{"sha256:cd"}}},
	"remote-capacity": {&Empty{}, &CapacityAns{100, 3, 97, -1, 12, 2, 345}},
	"remote-tap":      {&gNetTap, &Empty{}},
	"remote-layers":   {&LayersReq{[]string{"sha256:cd", "sha256:ef"}}, &LayersAns{[]string{"sha256:ef"}}},
	"remote-putlayer": {&PutLayerReq{"sha256:cd", 1024}, &Empty{}},
	"remote-image":    {&ImageReq{[]byte(`{"os":"linux"}`)}, &PullAns{"sha256:ab", "", []byte(`{"os":"linux"}`), []string{"sha256:cd"}}},
	"remote-build": {&BuildReq{Dockerfile: []byte("FROM x\n"), Context: "sha256:cd", Args: []string{"A=1"}, Target: "t", NoCacheStages: []string{"s"},
		Epoch: 1, HasEpoch: true, Secrets: []BuildSecret{{"id", []byte("v")}}, Pull: PullReq{Platform: "linux/amd64"}}, &Empty{}},
}

func readGolden(t *testing.T) []wiregolden.Msg {
	t.Helper()
	msgs, err := wiregolden.Read()
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func TestGoldenMessages(t *testing.T) {
	covered := map[uint16]bool{}
	for _, g := range readGolden(t) {
		if g.Type == MsgError {
			var e Encoder
			encodeIPCError(&e, &IPCError{Code: ErrCodeNotExist, Message: "no such file or directory", Op: "stat", Path: "/x", Errno: 2})
			if !bytes.Equal(e.Bytes(), g.Ans) {
				t.Errorf("%s: error answer %x, want %x", g.Label, e.Bytes(), g.Ans)
			}
			continue
		}
		d := Describe(g.Type)
		if d == nil {
			t.Errorf("%s: message 0x%04x is not in the table", g.Label, g.Type)
			continue
		}
		covered[g.Type] = true
		bodies, ok := goldenBodies[g.Label]
		if !ok {
			t.Errorf("%s: no typed bodies", g.Label)
			continue
		}
		if len(g.Ans) == 0 || g.Ans[0] != ErrCodeOK {
			t.Errorf("%s: golden answer %x lacks the success byte", g.Label, g.Ans)
			continue
		}
		checkBody(t, g.Label+" request", d.RequestType(), bodies[0], g.Req)
		checkBody(t, g.Label+" answer", d.AnswerType(), bodies[1], g.Ans[1:])
	}
	for _, d := range Messages() {
		if !covered[d.Type] {
			t.Errorf("%s (0x%04x) has no golden message", d.Name, d.Type)
		}
	}
}

// checkBody checks that m, of type want, encodes to golden and decodes
// from it to itself.
func checkBody(t *testing.T, what string, want reflect.Type, m Msg, golden []byte) {
	t.Helper()
	if got := reflect.TypeOf(m).Elem(); got != want {
		t.Errorf("%s: body is a %v, the table says %v", what, got, want)
		return
	}
	var e Encoder
	m.Encode(&e)
	if !bytes.Equal(e.Bytes(), golden) {
		t.Errorf("%s: encodes to\n  %x\nwant\n  %x", what, e.Bytes(), golden)
	}
	back := reflect.New(want).Interface().(Msg)
	d := NewDecoder(golden)
	if err := back.Decode(d); err != nil {
		t.Errorf("%s: decoding the golden bytes: %v", what, err)
		return
	}
	if d.Remaining() != 0 {
		t.Errorf("%s: %d golden bytes left over", what, d.Remaining())
	}
	if !reflect.DeepEqual(normalize(back), normalize(m)) {
		t.Errorf("%s: decodes to %+v, want %+v", what, back, m)
	}
}

// normalize makes empty and nil slices compare equal.
func normalize(m Msg) Msg {
	var e Encoder
	m.Encode(&e)
	out := reflect.New(reflect.TypeOf(m).Elem()).Interface().(Msg)
	out.Decode(NewDecoder(e.Bytes()))
	return out
}

// TestSeedShapedRequests: a request in a seed layout, without the fields
// this SDK appends, still decodes.
func TestSeedShapedRequests(t *testing.T) {
	for _, tc := range []struct {
		full, seed Msg
	}{
		{&OpenReq{"/f", false}, &OpenReq{}},
		{&ChownReq{"/o", 1, 2, false}, &ChownReq{}},
		{&ChtimesReq{"/t", 1, 2, 0}, &ChtimesReq{}},
		{&WaitReq{5, 0}, &WaitReq{}},
		{&KillReq{5, 9, false}, &KillReq{}},
		{&DialReq{"tcp", "a:1", 0, false}, &DialReq{}},
	} {
		var e Encoder
		tc.full.Encode(&e)
		b := e.Bytes()[:len(e.Bytes())-1] // without the optional last byte
		if err := tc.seed.Decode(NewDecoder(b)); err != nil || !reflect.DeepEqual(tc.seed, tc.full) {
			t.Errorf("%T without its last byte: %+v, %v; want %+v", tc.full, tc.seed, err, tc.full)
		}
	}
}
