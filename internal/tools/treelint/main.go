// Command treelint checks that the packages which read trees a sandbox can
// write (its writable layer) touch files only through descriptors: they
// call no file function that resolves a path by name from the process's
// root or working directory (os.Open, os.Lstat, filepath.WalkDir,
// unix.Lstat, unix.Openat(unix.AT_FDCWD, ...), ...). A path made from a
// descriptor (fdPath(fd), fsutil.FDPath(fd, name): /proc/self/fd/N, the
// inode the descriptor holds) is allowed, and so is a call on the line
// after a "treelint:trusted-path <why>" comment (a tree's root, which the
// host made).
//
// Usage:
//
//	go run ./internal/tools/treelint DIR...
//
// It prints each call it refuses as file:line: message and exits with
// status 1 when there is one. make lint runs it on internal/untrusted and
// internal/snapshot.
package main

import (
	"fmt"
	"go/ast"
	"go/token"
	"os"
	"strconv"
	"strings"

	"github.com/ccsandbox/sandbox/internal/tools/lintsrc"
)

// byName are the functions that resolve a path argument by name, per
// import path.
var byName = map[string]map[string]bool{
	"os": set("Open", "OpenFile", "Create", "Stat", "Lstat", "ReadDir", "ReadFile", "WriteFile", "Readlink",
		"Chmod", "Chown", "Lchown", "Chtimes", "Mkdir", "MkdirAll", "MkdirTemp", "CreateTemp", "Remove",
		"RemoveAll", "Rename", "Symlink", "Link", "Truncate", "DirFS", "OpenRoot", "OpenInRoot", "Chdir", "CopyFS"),
	"io/ioutil":     set("ReadFile", "WriteFile", "ReadDir", "TempDir", "TempFile"),
	"path/filepath": set("Walk", "WalkDir", "Glob", "EvalSymlinks"),
	"golang.org/x/sys/unix": set("Open", "Creat", "Stat", "Lstat", "Access", "Readlink", "Chmod", "Chown",
		"Lchown", "Mkdir", "Mknod", "Mkfifo", "Unlink", "Rmdir", "Rename", "Symlink", "Link", "Listxattr",
		"Llistxattr", "Getxattr", "Lgetxattr", "Setxattr", "Lsetxattr", "Removexattr", "Lremovexattr",
		"Utimes", "UtimesNano", "Lutimes", "Truncate", "Statfs", "Chdir", "Chroot", "Mount", "Unmount"),
	"syscall": set("Open", "Creat", "Stat", "Lstat", "Access", "Readlink", "Chmod", "Chown", "Lchown",
		"Mkdir", "Mknod", "Unlink", "Rmdir", "Rename", "Symlink", "Link", "Utimes", "UtimesNano", "Truncate",
		"Statfs", "Chdir", "Chroot"),
}

// atCalls are the *at functions of x/sys/unix and syscall: they resolve by
// name when their first argument is AT_FDCWD.
var atCalls = set("Openat", "Openat2", "Fstatat", "Newfstatat", "Mkdirat", "Mknodat", "Unlinkat", "Renameat",
	"Renameat2", "Symlinkat", "Linkat", "Readlinkat", "Fchmodat", "Fchownat", "UtimesNanoAt", "Faccessat",
	"Faccessat2", "Statx", "Name_to_handle_at", "Fsconfig", "OpenTree", "MoveMount")

// fdNamers make a path from a descriptor.
var fdNamers = set("fdPath", "FDPath")

func set(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// finding is one refused call.
type finding struct {
	pos token.Position
	msg string
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: treelint DIR...")
		os.Exit(2)
	}
	var all []finding
	for _, dir := range os.Args[1:] {
		f, err := checkDir(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "treelint:", err)
			os.Exit(2)
		}
		all = append(all, f...)
	}
	for _, f := range all {
		fmt.Printf("%s: %s\n", f.pos, f.msg)
	}
	if len(all) > 0 {
		fmt.Println("treelint: these packages read trees a sandbox writes: go through internal/untrusted's descriptors, never a path")
		os.Exit(1)
	}
}

// checkDir checks the Go files of one package directory; tests, which
// build their trees by name, are left out.
func checkDir(dir string) ([]finding, error) { return lintsrc.CheckDir(dir, checkFile) }

// checkFile returns the refused calls of one file.
func checkFile(fset *token.FileSet, file *ast.File) []finding {
	imports := map[string]string{} // local name -> import path
	for _, imp := range file.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		name := p[strings.LastIndex(p, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		imports[name] = p
	}
	trusted := map[int]bool{} // lines after a treelint:trusted-path comment
	for _, cg := range file.Comments {
		for _, c := range cg.List {
			if strings.Contains(c.Text, "treelint:trusted-path") {
				trusted[fset.Position(c.End()).Line+1] = true
			}
		}
	}
	var out []finding
	ast.Inspect(file, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		pkg, ok := sel.X.(*ast.Ident)
		if !ok {
			return true
		}
		path, fn := imports[pkg.Name], sel.Sel.Name
		pos := fset.Position(call.Pos())
		if trusted[pos.Line] {
			return true
		}
		switch {
		case byName[path][fn]:
			if len(call.Args) > 0 && fromDescriptor(call.Args[0]) {
				return true
			}
			out = append(out, finding{pos, fmt.Sprintf("%s.%s resolves a path by name", pkg.Name, fn)})
		case (path == "golang.org/x/sys/unix" || path == "syscall") && atCalls[fn]:
			if len(call.Args) > 0 && isATFDCWD(call.Args[0]) {
				out = append(out, finding{pos, fmt.Sprintf("%s.%s(AT_FDCWD, ...) resolves a path by name", pkg.Name, fn)})
			}
		}
		return true
	})
	return out
}

// fromDescriptor reports whether e names a descriptor's file: a call of
// fdPath or fsutil.FDPath.
func fromDescriptor(e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	switch f := call.Fun.(type) {
	case *ast.Ident:
		return fdNamers[f.Name]
	case *ast.SelectorExpr:
		return fdNamers[f.Sel.Name]
	}
	return false
}

// isATFDCWD reports whether e is unix.AT_FDCWD or syscall.AT_FDCWD.
func isATFDCWD(e ast.Expr) bool {
	sel, ok := e.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "AT_FDCWD"
}
