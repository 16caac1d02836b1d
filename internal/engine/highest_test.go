package engine

import (
	"slices"
	"testing"
)

func TestHighestOnly(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{nil, []string{}},
		{[]string{"a", "b", "c"}, []string{"a", "b", "c"}},
		{[]string{"a", "b", "a"}, []string{"b", "a"}},
		{[]string{"a", "a", "b", "a", "b"}, []string{"a", "b"}},
	} {
		if got := HighestOnly(c.in); !slices.Equal(got, c.want) {
			t.Errorf("HighestOnly(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
