package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/ccsandbox/sandbox/internal/hv"
	"github.com/ccsandbox/sandbox/internal/idmap"
	"github.com/ccsandbox/sandbox/internal/untrusted"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// HostSource is a Source made of the host's own programs: its /usr, /bin,
// /sbin and /lib directories mounted read-only, under a generated minimal
// /etc (root and nobody users, no host secrets) and empty /tmp, /root and
// /home. It needs no download, so it works on a machine with no network;
// what it can run is whatever the host has installed.
type HostSource struct{}

// HostImage returns the source that runs the host's own programs; see
// HostSource.
func HostImage() *HostSource { return &HostSource{} }

// hostDirs are the host directories the host image mounts read-only when
// they are directories (when they are symlinks, as on merged-/usr systems,
// the image has the same symlink).
var hostDirs = []string{"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"}

// hostEtc are host files and directories under /etc the host image mounts
// read-only when present: what programs need to find libraries and
// certificates, nothing about the host's users or secrets.
var hostEtc = []string{"etc/alternatives", "etc/ld.so.cache", "etc/ld.so.conf", "etc/ld.so.conf.d", "etc/ssl"}

// hostGenerated are the files the host image writes itself.
var hostGenerated = map[string]string{
	"etc/passwd":        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
	"etc/group":         "root:x:0:\nnogroup:x:65534:\n",
	"etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
}

// hostImageVersion changes whenever the generated layer changes shape.
const hostImageVersion = "1"

func (h *HostSource) rootfs(ctx context.Context, o *storeOptions) (*rootfsSpec, error) {
	var binds []hv.Bind
	var links [][2]string // name, target
	var mountDirs, mountFiles []string
	for _, d := range hostDirs {
		fi, err := os.Lstat("/" + d)
		switch {
		case err != nil:
			continue
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink("/" + d)
			if err != nil {
				return nil, err
			}
			links = append(links, [2]string{d, target})
		case fi.IsDir():
			mountDirs = append(mountDirs, d)
			binds = append(binds, hv.Bind{HostPath: "/" + d, Path: "/" + d})
		}
	}
	for _, e := range hostEtc {
		fi, err := os.Stat("/" + e)
		if err != nil {
			continue
		}
		if fi.IsDir() {
			mountDirs = append(mountDirs, e)
		} else {
			mountFiles = append(mountFiles, e)
		}
		binds = append(binds, hv.Bind{HostPath: "/" + e, Path: "/" + e})
	}
	if len(binds) == 0 || !hasDir(binds, "/usr") {
		return nil, errors.New("host image: the host has no /usr directory")
	}

	// The layer's name is the hash of everything it holds.
	sum := sha256.New()
	fmt.Fprintf(sum, "v%s\n%v\n%v\n%v\n%v\n", hostImageVersion, links, mountDirs, mountFiles, idmap.Current())
	for _, k := range sortedKeys(hostGenerated) {
		fmt.Fprintf(sum, "%s\n%s\n", k, hostGenerated[k])
	}
	key := hex.EncodeToString(sum.Sum(nil))[:32]
	dir := filepath.Join(o.cacheDir, "hostimage", key)
	layer := filepath.Join(dir, "fs")
	if _, err := os.Stat(layer); err != nil {
		if err := buildHostLayer(dir, links, mountDirs, mountFiles); err != nil {
			return nil, fmt.Errorf("host image: %w", err)
		}
	}
	rc := runConfig{
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Cmd:        []string{"/bin/sh"},
		WorkingDir: "/",
	}
	cfg, _ := json.Marshal(&v1.ConfigFile{
		Architecture: runtime.GOARCH, OS: "linux",
		Config: v1.Config{Env: rc.Env, Cmd: rc.Cmd, WorkingDir: rc.WorkingDir},
	})
	return &rootfsSpec{
		layers: []string{layer},
		binds:  binds,
		config: rc,
		parent: snapshotParent{key: "host-" + key, host: key, config: cfg},
	}, nil
}

// buildHostLayer writes the host image's layer into dir/fs, atomically.
func buildHostLayer(dir string, links [][2]string, mountDirs, mountFiles []string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".tmp-")
	if err != nil {
		return err
	}
	defer untrusted.RemoveAll(tmp)
	root := filepath.Join(tmp, "fs")
	mkdir := func(name string, mode fs.FileMode) error {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		return os.Chmod(p, mode)
	}
	for _, d := range []string{"", "etc", "home", "var", "run", "proc", "sys", "dev", "mnt", "opt"} {
		if err := mkdir(d, 0o755); err != nil {
			return err
		}
	}
	if err := mkdir("root", 0o700); err != nil {
		return err
	}
	for _, d := range []string{"tmp", "var/tmp"} {
		if err := mkdir(d, 0o1777); err != nil {
			return err
		}
	}
	for _, d := range mountDirs {
		if err := mkdir(d, 0o755); err != nil {
			return err
		}
	}
	for _, f := range mountFiles {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			return err
		}
	}
	for _, l := range links {
		if err := os.Symlink(l[1], filepath.Join(root, l[0])); err != nil {
			return err
		}
	}
	for name, content := range hostGenerated {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	// The sandbox's root owns it all.
	m := idmap.Current()
	uid, _ := m.HostUID(0)
	gid, _ := m.HostGID(0)
	if os.Geteuid() == 0 {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, int(uid), int(gid))
		})
		if err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "fs")); serr == nil {
			return nil // another process built it first
		}
		return err
	}
	return nil
}

func hasDir(binds []hv.Bind, p string) bool {
	for _, b := range binds {
		if b.Path == p {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
