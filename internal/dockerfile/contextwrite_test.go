package dockerfile

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
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

// TestDockerignoreLinks: a .dockerignore that is a link is followed
// within the context, as docker follows it, and never to a host file;
// a pipe is refused without waiting on it.
func TestDockerignoreLinks(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(t.TempDir(), "host-rules")
	os.WriteFile(host, []byte("a.txt\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "rules"), []byte("*.env\n"), 0o644)
	os.Symlink("rules", filepath.Join(dir, ".dockerignore"))
	if data, err := readDockerignore(dir); err != nil || string(data) != "*.env\n" {
		t.Errorf("a link to a file of the context: %q, %v", data, err)
	}
	os.Remove(filepath.Join(dir, ".dockerignore"))
	os.Symlink(host, filepath.Join(dir, ".dockerignore"))
	if data, err := readDockerignore(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a link to a host file: %q, %v; want it followed within the context, to nothing", data, err)
	}
	os.Remove(filepath.Join(dir, ".dockerignore"))
	if err := syscall.Mkfifo(filepath.Join(dir, ".dockerignore"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readDockerignore(dir); err == nil || !strings.Contains(err.Error(), "must be a regular file") {
		t.Errorf("a pipe: %v", err)
	}
}
