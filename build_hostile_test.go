package sandbox

import (
	"context"
	"crypto/rand"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ccsandbox/sandbox/internal/testutil/testimage"
	"golang.org/x/sys/unix"
)

// TestBuildHostileSources: a Dockerfile reaches for a host file outside
// its context through COPY (--parents), RUN --mount binds, caches (by id
// and source), secrets and targets: symlinks in the context pointing out
// (absolute, relative, to a directory and to the file), ../ sources, a
// cache and a writable bind into which a step plants links for the next.
// Every step is refused or builds an image without the host file, and the
// host directory is unchanged.
func TestBuildHostileSources(t *testing.T) {
	secretDir := t.TempDir()
	secret := "HOST-CANARY-" + filepath.Base(secretDir)
	if err := os.WriteFile(filepath.Join(secretDir, "canary"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	ctxDir := t.TempDir()
	os.Symlink(secretDir, filepath.Join(ctxDir, "link"))
	os.Symlink(filepath.Join(secretDir, "canary"), filepath.Join(ctxDir, "abs"))
	os.Symlink("../../../../../../../../"+strings.TrimPrefix(secretDir, "/"), filepath.Join(ctxDir, "rel"))
	os.MkdirAll(filepath.Join(ctxDir, "d"), 0o755)
	os.WriteFile(filepath.Join(ctxDir, "d", "ok"), []byte("ok"), 0o644)
	cache := t.TempDir()
	src, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	base := loadInStore(t, src, cache)
	up := strings.Repeat("../", 12) + strings.TrimPrefix(secretDir, "/")
	steps := []string{
		"COPY --parents link/canary /p1/",
		"COPY --parents abs /p2/",
		"COPY --parents rel/canary /p3/",
		"COPY --parents " + up + "/canary /p4/",
		"COPY --parents d/../link/canary /p5/",
		"COPY --parents ./**/canary /p6/",
		"COPY link /p7/",
		"RUN --mount=type=bind,source=link,target=/m cat /m/canary > /r1; true",
		"RUN --mount=type=bind,source=abs,target=/m cat /m > /r2; true",
		"RUN --mount=type=bind,source=rel,target=/m cat /m/canary > /r3; true",
		"RUN --mount=type=bind,source=" + up + ",target=/m cat /m/canary > /r4; true",
		"RUN --mount=type=cache,id=" + up + ",target=/m cat /m/canary > /r5; true",
		"RUN --mount=type=cache,source=" + up + ",target=/m cat /m/canary > /r6; true",
		"RUN --mount=type=cache,id=x,target=/m ln -sf " + secretDir + " /m/l; true",
		"RUN --mount=type=cache,id=x,target=/m cat /m/l/canary > /r7; true",
		"RUN --mount=type=bind,source=d,target=/m,rw ln -s " + secretDir + " /m/l2; true",
		"RUN --mount=type=bind,source=d,target=" + up + " cat " + up + "/canary > /r8; true",
		"RUN --mount=type=secret,id=nope,target=/s,required=false cat /s > /r9; true",
	}
	for _, step := range steps {
		df := "FROM busybox\n" + step + "\n"
		snap, err := Build(context.Background(), []byte(df), WithBuildSource("busybox", base), WithCacheDir(cache), WithContextDir(ctxDir))
		if err != nil {
			t.Logf("%s: refused: %.200v", step, err)
			continue
		}
		inst := newInstance(t, snap, WithCacheDir(cache))
		out, _ := inst.Command("sh", "-c", "grep -r HOST-CANARY /r1 /r2 /r3 /r4 /r5 /r6 /r7 /r8 /r9 /p1 /p2 /p3 /p4 /p5 /p6 /p7 /m /tmp 2>/dev/null | head -3").CombinedOutput()
		if strings.Contains(string(out), secret) {
			t.Errorf("%s: the image holds the host file: %q", step, out)
		}
		inst.Close()
		snap.Close()
	}
	if b, _ := os.ReadFile(filepath.Join(secretDir, "canary")); string(b) != secret {
		t.Errorf("the host file changed: %q", b)
	}
	ents, _ := os.ReadDir(secretDir)
	if len(ents) != 1 {
		t.Errorf("the host directory changed: %v", ents)
	}
}

// TestBuildKeptSandboxFollowsItsSteps: a sandbox kept from one RUN for
// the next holds more than its files (/etc/hosts, /dev, /dev/shm), so a
// stage that makes the same files as another stage's steps by other
// instructions must not hand its sandbox to that stage's next RUN, whose
// result the cache records under the honest instructions' key. Stage a
// redoes b's first step and then plants things no snapshot keeps; a2
// makes b run after a, so that a's sandbox is there for b to take.
func TestBuildKeptSandboxFollowsItsSteps(t *testing.T) {
	cache := t.TempDir()
	src, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	base := loadInStore(t, src, cache)
	dockerfile := `FROM busybox AS a
RUN echo hello > /greeting
RUN touch /greeting; echo '192.0.2.66 planted.example' >> /etc/hosts; echo x > /dev/shm/planted
FROM busybox AS b
RUN echo hello > /greeting
RUN cat /etc/hosts > /seen; ls /dev/shm >> /seen
FROM a AS a2
ONBUILD COPY --from=b /seen /seen
FROM a2
`
	img, err := Build(context.Background(), []byte(dockerfile), WithCacheDir(cache), WithBuildSource("busybox", base),
		WithPullOptions(WithPullPolicy(PullNever)))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	inst := newInstance(t, img, WithCacheDir(cache))
	if seen := run(t, inst, "cat /seen"); strings.Contains(seen, "planted") {
		t.Errorf("stage b's step ran in the sandbox stage a left, which planted things; it saw:\n%s", seen)
	}
}

// TestBuildCopyThroughReplacedDirectory: one COPY writes a directory
// (dst/s/victim), replaces its parent with a symlink to a host directory
// (dst/s), then writes into the first again (a heredoc named
// s/victim/planted): the builder had kept dst/s/victim among the
// directories it made, wrote the heredoc through the link into the host
// directory, and chmodded and chowned the host's victim when it finished
// the layer. The trees come from the context, and from a stage with no
// context at all (any image could ship them). The host directory is
// unchanged, and the file lands in the image.
func TestBuildCopyThroughReplacedDirectory(t *testing.T) {
	const heredoc = " <<s/victim/planted /dst/\nhello from the build\ns/victim/planted\n"
	cases := []struct {
		name string
		df   func(host string) string
		ctx  func(t *testing.T, host string) string
	}{
		{"context", func(string) string { return "FROM busybox\nCOPY a b" + heredoc }, func(t *testing.T, host string) string {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "a", "s", "victim"), 0o777); err != nil {
				t.Fatal(err)
			}
			os.Chmod(filepath.Join(dir, "a", "s", "victim"), 0o777)
			os.Mkdir(filepath.Join(dir, "b"), 0o755)
			if err := os.Symlink(host, filepath.Join(dir, "b", "s")); err != nil {
				t.Fatal(err)
			}
			return dir
		}},
		{"stage", func(host string) string {
			return "FROM busybox AS evil\nRUN mkdir -p /a/s/victim /b && chmod 777 /a/s/victim && (chown 1234:1234 /a/s/victim || true) && ln -s " + host + " /b/s\n" +
				"FROM busybox\nCOPY --from=evil /a /b" + heredoc
		}, func(t *testing.T, _ string) string { return t.TempDir() }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			host := t.TempDir()
			victim := filepath.Join(host, "victim")
			if err := os.Mkdir(victim, 0o700); err != nil {
				t.Fatal(err)
			}
			var before, after unix.Stat_t
			if err := unix.Stat(victim, &before); err != nil {
				t.Fatal(err)
			}
			b, err := buildDockerfile(t, c.df(host), c.ctx(t, host))
			if err := unix.Stat(victim, &after); err != nil {
				t.Fatal(err)
			}
			if after.Mode != before.Mode || after.Uid != before.Uid || after.Gid != before.Gid {
				t.Errorf("the host directory %s changed: mode %o owner %d:%d, was mode %o owner %d:%d",
					victim, after.Mode, after.Uid, after.Gid, before.Mode, before.Uid, before.Gid)
			}
			if ents, _ := os.ReadDir(victim); len(ents) != 0 {
				t.Errorf("the build wrote into the host directory: %v", ents)
			}
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			inst := newInstance(t, b.snap)
			if got, err := inst.ReadFile("/dst/s/victim/planted"); err != nil || string(got) != "hello from the build\n" {
				t.Errorf("the image's /dst/s/victim/planted: %q, %v", got, err)
			}
		})
	}
}

// TestBuildCopyKeepsHoles: a stage's sparse file of 1 GiB (one block in
// its sandbox, none in the store) copied by COPY --from took 1 GiB of the
// host's disk (truncate -s 1T filled it, past any limit). The copy keeps
// the holes: neither file takes more than a few blocks in the store.
func TestBuildCopyKeepsHoles(t *testing.T) {
	cache := t.TempDir()
	src, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	base := loadInStore(t, src, cache)
	df := "FROM busybox AS a\nRUN truncate -s 1G /big\nFROM busybox\nCOPY --from=a /big /copied\n"
	snap, err := Build(context.Background(), []byte(df), WithBuildSource("busybox", base), WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	found := 0
	// The test's own store, which no sandbox writes: walking it by name is safe.
	filepath.WalkDir(filepath.Join(cache, "layers"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "big" && d.Name() != "copied" {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Error(err)
			return nil
		}
		found++
		if st.Size != 1<<30 || st.Blocks*512 > 1<<20 {
			t.Errorf("the store's %s: %d bytes, %d of them on disk; want 1 GiB, sparse", d.Name(), st.Size, st.Blocks*512)
		}
		return nil
	})
	if found != 2 {
		t.Errorf("found %d of the files big and copied in the store's layers, want 2", found)
	}
	inst := newInstance(t, snap, WithCacheDir(cache))
	if fi, err := inst.Stat("/copied"); err != nil || fi.Size() != 1<<30 {
		t.Errorf("the image's /copied: %v, %v", fi, err)
	}
}

// TestBuildCopyKeepsHardLinks: a context (on a network helper, a layer
// the client sent, counted at its size) or a stage holds one file of 1 MiB
// and 200 hard links to it: 1 MiB of disk. COPY wrote each link as a file
// of its own, 201 MiB: a file of the share's size and 4 million links
// (what a layer may hold) fill the host's disk from one COPY, past every
// limit, as the sparse file did. The copy keeps the links (as BuildKit
// does), so the new layer takes no more room than the source, and every
// name still reads the file.
func TestBuildCopyKeepsHardLinks(t *testing.T) {
	const links = 200
	const size = 1 << 20
	cases := []struct {
		name string
		df   string
		ctx  func(t *testing.T) string
	}{
		{"context", "FROM busybox\nCOPY d /x\n", func(t *testing.T) string {
			dir := t.TempDir()
			d := filepath.Join(dir, "d")
			os.Mkdir(d, 0o755)
			buf := make([]byte, size)
			rand.Read(buf)
			if err := os.WriteFile(filepath.Join(d, "f"), buf, 0o644); err != nil {
				t.Fatal(err)
			}
			for i := range links {
				if err := os.Link(filepath.Join(d, "f"), filepath.Join(d, "l"+strconv.Itoa(i))); err != nil {
					t.Fatal(err)
				}
			}
			return dir
		}},
		{"stage", "FROM busybox AS a\nRUN mkdir /d && head -c " + strconv.Itoa(size) + " /dev/urandom > /d/f && for i in $(seq 1 " + strconv.Itoa(links) + "); do ln /d/f /d/l$i; done\n" +
			"FROM busybox\nCOPY --from=a /d /x\n", func(t *testing.T) string { return t.TempDir() }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cache := t.TempDir()
			src, err := testimage.Busybox()
			if err != nil {
				t.Fatal(err)
			}
			base := loadInStore(t, src, cache)
			snap, err := Build(context.Background(), []byte(c.df), WithBuildSource("busybox", base), WithCacheDir(cache), WithContextDir(c.ctx(t)))
			if err != nil {
				t.Fatal(err)
			}
			defer snap.Close()
			// The test's own store, which no sandbox writes: walking it by name is safe.
			type ino struct{ dev, ino uint64 }
			seen := map[ino]bool{}
			var blocks int64
			filepath.WalkDir(filepath.Join(cache, "layers"), func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() || filepath.Base(filepath.Dir(p)) != "x" || d.Name() != "f" && !strings.HasPrefix(d.Name(), "l") {
					return nil
				}
				var st unix.Stat_t
				if unix.Lstat(p, &st) != nil {
					return nil
				}
				if k := (ino{st.Dev, st.Ino}); !seen[k] {
					seen[k] = true
					blocks += st.Blocks * 512
				}
				return nil
			})
			if blocks > 2*size {
				t.Errorf("COPY of one %d-byte file and its %d hard links wrote %d distinct files, %d MiB of the host's disk; want the links kept (~1 MiB)", size, links, len(seen), blocks>>20)
			}
			inst := newInstance(t, snap, WithCacheDir(cache))
			out, err := inst.Command("sh", "-c", "md5sum /x/* | cut -d' ' -f1 | sort | uniq -c | wc -l; ls /x | wc -l; stat -c %h /x/f").Output()
			if want := "1\n" + strconv.Itoa(links+1) + "\n" + strconv.Itoa(links+1) + "\n"; err != nil || string(out) != want {
				t.Errorf("in the image: distinct contents, names, links of /x/f: %q, %v; want %q", out, err, want)
			}
		})
	}
}

// TestBuildCopyHardLinkReplaced: a later source of one COPY replaces the
// first copy of a hard-linked file (a/f, linked as b/g, then c/f lands on
// /dst/f); b/g must be copied again, not linked to what replaced a/f. The
// replacement took the first copy's freed inode number, which the writer
// took for the first copy, so /dst/g read c/f's content with its mode.
func TestBuildCopyHardLinkReplaced(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"a", "b", "c"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "f"), []byte("A"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "a", "f"), filepath.Join(dir, "b", "g")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "c", "f"), []byte("C"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := buildDockerfile(t, "FROM busybox\nCOPY a/ c/ b/ /dst/\n", dir)
	if err != nil {
		t.Fatal(err)
	}
	inst := newInstance(t, b.snap)
	out, err := inst.Command("sh", "-c", "cat /dst/f; echo; cat /dst/g; echo; stat -c '%h %a' /dst/g").Output()
	if want := "C\nA\n1 644\n"; err != nil || string(out) != want {
		t.Errorf("after COPY a/ c/ b/ /dst/: f, g, g's links and mode: %q, %v; want %q", out, err, want)
	}
}
