package dockerfile

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestWriteContext: the context as a build reads it, as a tar: what
// .dockerignore leaves out is not in it, a symlink stays a link (its
// target unread), a socket is left out, the same files give the same
// bytes; a pipe and a name a layer tar reserves are errors.
func TestWriteContext(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("A"), 0o640)
	os.WriteFile(filepath.Join(dir, "secret.env"), []byte("S"), 0o600)
	os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("*.env\n"), 0o644)
	os.Mkdir(filepath.Join(dir, "d"), 0o750)
	os.Symlink("/etc/shadow", filepath.Join(dir, "d", "out"))
	ln, err := net.Listen("unix", filepath.Join(dir, "d", "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var first, second bytes.Buffer
	if err := WriteContext(context.Background(), &first, dir); err != nil {
		t.Fatal(err)
	}
	if err := WriteContext(context.Background(), &second, dir); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Error("the same context gave two tars")
	}
	var got []string
	tr := tar.NewReader(&first)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got = append(got, h.Name+" "+string(h.Typeflag)+" "+h.Linkname+string(b))
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: owned by %d:%d", h.Name, h.Uid, h.Gid)
		}
	}
	want := ".dockerignore 0 *.env\n|a.txt 0 A|d/ 5 |d/out 2 /etc/shadow"
	if strings.Join(got, "|") != want {
		t.Errorf("context tar:\n%q\nwant\n%q", strings.Join(got, "|"), want)
	}

	os.WriteFile(filepath.Join(dir, ".wh.x"), nil, 0o644)
	if err := WriteContext(context.Background(), io.Discard, dir); err == nil || !strings.Contains(err.Error(), ".wh.") {
		t.Errorf("a name starting with .wh.: %v", err)
	}
	os.Remove(filepath.Join(dir, ".wh.x"))
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteContext(context.Background(), io.Discard, dir); err == nil || !strings.Contains(err.Error(), "pipe") {
		t.Errorf("a named pipe: %v", err)
	}
}
