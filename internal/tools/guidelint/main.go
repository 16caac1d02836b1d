// Command guidelint checks two rules of the developers' guide that a
// machine can check, so that they stay true:
//
//   - no Go file outside tests is longer than 600 lines (a file that grows
//     past it is split on a real seam, not trimmed);
//   - the public package (the module's root directory) speaks to the agent
//     and the helper only through internal/ipc's typed messages and
//     clients: it names no ipc.Encoder, ipc.Decoder, ipc.NewEncoder or
//     ipc.NewDecoder and reads no message's raw Payload (the status byte and
//     the layout are internal/ipc's business).
//
// Usage:
//
//	go run ./internal/tools/guidelint [ROOT]
//
// ROOT is the module's root directory (default "."). Directories named
// testdata, vendor or starting with a dot are left out. It prints each
// finding as file:line: message and exits with status 1 when there is one.
// make lint runs it.
package main

import (
	"fmt"
	"go/ast"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ccsandbox/sandbox/internal/tools/lintsrc"
)

// maxLines is the longest a Go file outside tests may be.
const maxLines = 600

// ipcPath is the import path of the wire package.
const ipcPath = "github.com/ccsandbox/sandbox/internal/ipc"

// byHand are internal/ipc's names for laying a message out by hand.
var byHand = map[string]bool{"Encoder": true, "Decoder": true, "NewEncoder": true, "NewDecoder": true}

// finding is one broken rule.
type finding struct {
	pos token.Position
	msg string
}

func main() {
	root := "."
	switch len(os.Args) {
	case 1:
	case 2:
		root = os.Args[1]
	default:
		fmt.Fprintln(os.Stderr, "usage: guidelint [ROOT]")
		os.Exit(2)
	}
	long, err := checkLengths(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "guidelint:", err)
		os.Exit(2)
	}
	fence, err := checkPublic(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "guidelint:", err)
		os.Exit(2)
	}
	for _, f := range append(long, fence...) {
		fmt.Printf("%s: %s\n", f.pos, f.msg)
	}
	if len(long)+len(fence) > 0 {
		os.Exit(1)
	}
}

// checkLengths returns a finding for each Go file under root, tests left
// out, that is longer than maxLines.
func checkLengths(root string) ([]finding, error) {
	var out []finding
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if n := lineCount(src); n > maxLines {
			out = append(out, finding{token.Position{Filename: path, Line: n},
				fmt.Sprintf("%d lines, more than %d: split the file on a seam", n, maxLines)})
		}
		return nil
	})
	return out, err
}

// lineCount counts lines as wc -l does, plus a last line without a newline.
func lineCount(src []byte) int {
	n := strings.Count(string(src), "\n")
	if len(src) > 0 && src[len(src)-1] != '\n' {
		n++
	}
	return n
}

// checkPublic checks the public package's files (root's own, tests left
// out) for messages laid out or read by hand.
func checkPublic(root string) ([]finding, error) { return lintsrc.CheckDir(root, checkFile) }

// checkFile returns where one file of the public package names ipc's
// encoder or decoder, or reads a message's Payload.
func checkFile(fset *token.FileSet, file *ast.File) []finding {
	ipcName := ""
	for _, imp := range file.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == ipcPath {
			ipcName = "ipc"
			if imp.Name != nil {
				ipcName = imp.Name.Name
			}
		}
	}
	var out []finding
	ast.Inspect(file, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		pos := fset.Position(sel.Sel.Pos())
		if pkg, ok := sel.X.(*ast.Ident); ok && ipcName != "" && pkg.Name == ipcName && byHand[sel.Sel.Name] {
			out = append(out, finding{pos, fmt.Sprintf("%s.%s lays a message out by hand: use internal/ipc's message types and ipc.Agent", pkg.Name, sel.Sel.Name)})
		}
		if sel.Sel.Name == "Payload" {
			out = append(out, finding{pos, "reads a message's raw Payload: use internal/ipc's message types and ipc.Agent"})
		}
		return true
	})
	return out
}
