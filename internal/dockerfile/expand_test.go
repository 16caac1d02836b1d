package dockerfile

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// TestExpansionBounded: words whose variables would expand to terabytes
// (a variable doubled forty times, every character of a long value
// replaced by a long string) are refused early, within a few MiB of
// memory; ordinary expansion is untouched.
func TestExpansionBounded(t *testing.T) {
	lex := shell.NewLex('\\')
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	env := []string{"A0=xx"}
	var err error
	for i := 1; i <= 40 && err == nil; i++ {
		var w string
		w, err = processWord(lex, fmt.Sprintf("${A%d}${A%d}", i-1, i-1), shell.EnvsFromSlice(env))
		env = append(env, fmt.Sprintf("A%d=%s", i, w))
	}
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("a variable doubled forty times: %v", err)
	}
	long := strings.Repeat("y", 1<<20)
	pattern := strings.Repeat("?*", 10) + "b"
	for _, form := range []string{"${L//?/" + strings.Repeat("z", 100) + "}", "${L/" + pattern + "/x}", "${L#" + pattern + "}", "${L%%" + pattern + "}"} {
		if _, err := processWord(lex, form, shell.EnvsFromSlice([]string{"L=" + long})); err == nil {
			t.Errorf("%.12s... on a long value: no error", form)
		}
	}
	if _, err := processWord(lex, "${S#"+strings.Repeat("?*", 8<<20)+"}", shell.EnvsFromSlice([]string{"S=short"})); err == nil {
		t.Error("a long pattern: no error")
	}
	// A long word (a heredoc of shell code) with short patterns on short
	// or unset values is ordinary.
	script := strings.Repeat("echo ${f%/*} ${g#x} ${h//a/b}\n", 1000)
	if _, err := processWord(lex, script, shell.EnvsFromSlice([]string{"f=/a/b"})); err != nil {
		t.Errorf("a long script with short patterns: %v", err)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<20 {
		t.Errorf("refusing took %d MiB of allocation", grew>>20)
	}
	for word, want := range map[string]string{"$A-${B:-d}": "a-d", "${A//a/bb}": "bb", "${C#x}": "yz"} {
		if got, err := processWord(lex, word, shell.EnvsFromSlice([]string{"A=a", "C=xyz"})); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", word, got, err, want)
		}
	}
}

// TestLineWriter: output is reported line by line, a line split across
// writes whole, and a line longer than maxOutputLine (output with no
// newline at all) in pieces of that size, never held whole.
func TestLineWriter(t *testing.T) {
	var got []string
	w := &lineWriter{emit: func(l string) { got = append(got, l) }}
	w.Write([]byte("one\r\ntw"))
	w.Write([]byte("o\n\nthree"))
	w.flush()
	if want := []string{"one", "two", "", "three"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lines %q, want %q", got, want)
	}
	got = nil
	chunk := strings.Repeat("x", 1000)
	for range 100 { // 100,000 bytes, no newline
		w.Write([]byte(chunk))
		if cap(w.buf) > 2*maxOutputLine {
			t.Fatalf("the writer holds %d bytes of one line", cap(w.buf))
		}
	}
	w.Write([]byte("\n"))
	total := 0
	for _, l := range got {
		if len(l) > maxOutputLine {
			t.Errorf("a piece of %d bytes", len(l))
		}
		total += len(l)
	}
	if total != 100000 || len(got) != 100000/maxOutputLine+1 {
		t.Errorf("%d pieces of %d bytes in all, want %d of 100000", len(got), total, 100000/maxOutputLine+1)
	}
}

// TestExpansionPatternsDisguised: a pattern or replacement that brings
// variables, escapes or quotes (which may hide the brace that ends it),
// or a name in another script, is bounded as a long one is.
func TestExpansionPatternsDisguised(t *testing.T) {
	lex := shell.NewLex('\\')
	v := strings.Repeat("a", 4<<10)
	env := shell.EnvsFromSlice([]string{"A=" + v, "C=" + v, "Q=?", "Ä=" + v})
	for _, word := range []string{"${A//?/${C}}", "${A//?/$C}", "${A//${Q}/${C}}", `${A//?/\}` + v[:100] + "}",
		"${A//?/'}'" + v[:100] + "}", "${Ä//?/" + v + "}"} {
		if _, err := processWord(lex, word, env); err == nil {
			t.Errorf("%.16s...: no error", word)
		}
	}
	if got, err := processWord(lex, "${Q/?/x}", env); err != nil || got != "x" {
		t.Errorf("a short pattern on a short value: %q, %v", got, err)
	}
}
