package vm

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInitRuntime(t *testing.T) {
	// Debian's busybox-static: nothing besides itself.
	if files, err := initRuntime("/bin/busybox"); err != nil || len(files) != 0 {
		t.Errorf("static busybox: %v %v", files, err)
	}
	// A dynamic program: its interpreter and libc.
	files, err := initRuntime("/bin/ls")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	joined := strings.Join(names, " ")
	if !strings.Contains(joined, "ld-linux") || !strings.Contains(joined, initLibDir+"/libc.so.6") {
		t.Errorf("/bin/ls needs %v", names)
	}
	// Not a program at all.
	junk := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(junk, []byte("#!/bin/sh\n"), 0o755)
	if _, err := initRuntime(junk); err == nil || !strings.Contains(err.Error(), "/init") {
		t.Errorf("a script as /init: %v", err)
	}
}

// TestInitramfsCache: the archive is built once per content, and a change
// of content makes another.
func TestInitramfsCache(t *testing.T) {
	k, err := findKernel("", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	exe := filepath.Join(t.TempDir(), "init")
	b, _ := os.ReadFile("/bin/busybox")
	os.WriteFile(exe, b, 0o755)
	plan, err := planInitramfs(exe, k)
	if err != nil {
		t.Fatal(err)
	}
	p1, err := buildInitramfs(dir, plan)
	if err != nil {
		t.Fatal(err)
	}
	fi1, _ := os.Stat(p1)
	if fi1.Mode().Perm() != 0o644 {
		t.Errorf("mode %v: QEMU, as the sandbox's root, must read it", fi1.Mode())
	}
	p2, _ := buildInitramfs(dir, plan)
	fi2, _ := os.Stat(p2)
	if p1 != p2 || !os.SameFile(fi1, fi2) {
		t.Errorf("rebuilt the same content: %s %s", p1, p2)
	}
	os.WriteFile(exe, append(b, 0), 0o755)
	plan2, _ := planInitramfs(exe, k)
	p3, err := buildInitramfs(dir, plan2)
	if err != nil || p3 == p1 {
		t.Errorf("changed content, same archive %s (%v)", p3, err)
	}
	// The archive holds /init and the module order.
	data, _ := os.ReadFile(p1)
	for _, name := range []string{"init\x00", "modules/order\x00", "modules/9p.ko\x00", "TRAILER!!!\x00"} {
		if !bytes.Contains(data, []byte(name)) {
			t.Errorf("the archive lacks %q", name)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("cache holds %d entries, want 2 (no temporary files left)", len(entries))
	}
}
