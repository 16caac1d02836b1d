package dockerfile

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzCheck feeds Check arbitrary Dockerfiles, seeded with the corpus of
// real-world shapes: it must return problems, never panic.
func FuzzCheck(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "dockerfiles", "*", "Dockerfile"))
	for _, p := range seeds {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("FROM a AS b\nRUN --mount=type=cache,target=x,from=b true\nCOPY --parents --exclude=[ a/./b /c/\n"))
	f.Add([]byte("# escape=`\nFROM --platform=$X scratch\nADD --checksum=sha256:zz http://h/ /\n"))
	f.Fuzz(func(t *testing.T, dockerfile []byte) {
		for _, p := range Check(dockerfile, Options{}) {
			_ = p.String()
		}
	})
}
