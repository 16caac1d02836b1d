package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// write puts files (name -> content) under a new directory and returns it.
func write(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// lines is a Go file of n lines.
func lines(n int) string {
	return "package p\n" + strings.Repeat("// x\n", n-1)
}

// TestRefusesLongFiles: a file of 601 lines fails, wherever it is below
// the root; one of 600, a test and anything under testdata pass.
func TestRefusesLongFiles(t *testing.T) {
	root := write(t, map[string]string{
		"long.go":          lines(601),
		"sub/deep/long.go": lines(700),
		"ok.go":            lines(600),
		"long_test.go":     lines(900),
		"testdata/gen.go":  lines(900),
		".git/x.go":        lines(900),
	})
	got, err := checkLengths(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range got {
		rel, _ := filepath.Rel(root, f.pos.Filename)
		names = append(names, rel+": "+f.msg)
	}
	if len(got) != 2 || !strings.HasPrefix(names[0], "long.go: 601 lines") || !strings.HasPrefix(names[1], "sub/deep/long.go: 700 lines") {
		t.Errorf("findings %q, want long.go (601 lines) and sub/deep/long.go (700 lines)", names)
	}
}

// TestRefusesHandLaidMessages shows the fence failing on what it exists
// for: an encoder, a decoder (under another import name too) and a raw
// payload in the public package; its tests are left out.
func TestRefusesHandLaidMessages(t *testing.T) {
	root := write(t, map[string]string{
		"a.go": `package sandbox

import "github.com/ccsandbox/sandbox/internal/ipc"

func f(c *ipc.Client) error {
	e := ipc.NewEncoder()
	e.String("/tmp/f")
	resp, err := c.Call(ipc.MsgFsStat, e.Bytes())
	if err != nil {
		return err
	}
	_ = resp.Payload[1:]
	return nil
}
`,
		"b.go": `package sandbox

import wire "github.com/ccsandbox/sandbox/internal/ipc"

var d *wire.Decoder
`,
		"c.go": `package sandbox

import "github.com/ccsandbox/sandbox/internal/ipc"

// Typed calls are what the public package should make.
func g(a *ipc.Agent) {}
`,
		"a_test.go": `package sandbox

import "github.com/ccsandbox/sandbox/internal/ipc"

var e = ipc.NewEncoder()
`,
	})
	got, err := checkPublic(root)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, f := range got {
		msgs = append(msgs, filepath.Base(f.pos.Filename)+": "+f.msg)
	}
	want := []string{"a.go: ipc.NewEncoder", "a.go: reads a message's raw Payload", "b.go: wire.Decoder"}
	if len(got) != len(want) {
		t.Fatalf("findings %q, want %d", msgs, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(msgs[i], w) {
			t.Errorf("finding %d: %q, want %s...", i, msgs[i], w)
		}
	}
}

// TestModuleClean runs both checks on this module, as make lint does.
func TestModuleClean(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	long, err := checkLengths(root)
	if err != nil {
		t.Fatal(err)
	}
	fence, err := checkPublic(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(long, fence...) {
		t.Errorf("%s: %s", f.pos, f.msg)
	}
}
