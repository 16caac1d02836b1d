// Package wiregolden reads internal/ipc/testdata/wire.golden, the golden
// bytes of every message of the protocol, for the tests of the packages
// that send and serve them.
package wiregolden

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Msg is one golden message: a request and its answer.
type Msg struct {
	Label string
	Type  uint16
	Files int    // descriptors sent with the request
	Req   []byte // the request's payload
	Ans   []byte // the answer's payload, its success byte first
}

// Path returns the golden file's path: under the module root found above
// the working directory (a test runs in its package's directory, which may
// be a copy of the checkout, as make test's rootless phases run), else
// beside this source file as it was compiled.
func Path() string {
	const rel = "internal/ipc/testdata/wire.golden"
	if d, err := os.Getwd(); err == nil {
		for ; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				return filepath.Join(d, rel)
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", rel)
}

// Read returns the golden messages in file order, or why the file cannot
// be read.
func Read() ([]Msg, error) {
	data, err := os.ReadFile(Path())
	if err != nil {
		return nil, err
	}
	var out []Msg
	seen := map[string]bool{}
	for n, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m, err := parse(line)
		if err != nil {
			return nil, fmt.Errorf("wire.golden:%d: %w", n+1, err)
		}
		if seen[m.Label] {
			return nil, fmt.Errorf("wire.golden:%d: label %s twice", n+1, m.Label)
		}
		seen[m.Label] = true
		out = append(out, m)
	}
	return out, nil
}

// parse reads "label 0xTTTT files=N req=HEX ans=HEX"; an empty payload
// leaves its hex empty.
func parse(line string) (Msg, error) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return Msg{}, fmt.Errorf("short line %q", line)
	}
	m := Msg{Label: f[0]}
	var typ uint64
	if _, err := fmt.Sscanf(f[1], "0x%x", &typ); err != nil || typ > 0xffff {
		return Msg{}, fmt.Errorf("bad type in %q", line)
	}
	m.Type = uint16(typ)
	if _, err := fmt.Sscanf(f[2], "files=%d", &m.Files); err != nil {
		return Msg{}, fmt.Errorf("bad files in %q", line)
	}
	for _, kv := range f[3:] {
		var err error
		if v, ok := strings.CutPrefix(kv, "req="); ok {
			m.Req, err = hex.DecodeString(v)
		} else if v, ok := strings.CutPrefix(kv, "ans="); ok {
			m.Ans, err = hex.DecodeString(v)
		} else {
			err = fmt.Errorf("unknown field %q", kv)
		}
		if err != nil {
			return Msg{}, err
		}
	}
	return m, nil
}
