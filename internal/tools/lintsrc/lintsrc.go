// Package lintsrc reads a package's Go sources for the lint commands of
// internal/tools (treelint, guidelint).
package lintsrc

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strings"
)

// CheckDir parses the Go files of the package in dir, tests left out, in
// the order of their names and with their comments, and returns what check
// finds in each, in that order. It returns an error when dir holds no Go
// file or one does not parse.
func CheckDir[F any](dir string, check func(*token.FileSet, *ast.File) []F) ([]F, error) {
	fset, files, err := parseDir(dir)
	if err != nil {
		return nil, err
	}
	var out []F
	for _, f := range files {
		out = append(out, check(fset, f)...)
	}
	return out, nil
}

// parseDir parses the Go files of CheckDir.
func parseDir(dir string) (*token.FileSet, []*ast.File, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, nil, err
	}
	if len(names) == 0 {
		return nil, nil, fmt.Errorf("%s: no Go files", dir)
	}
	sort.Strings(names)
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			return nil, nil, err
		}
		files = append(files, f)
	}
	return fset, files, nil
}
