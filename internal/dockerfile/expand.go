package dockerfile

import (
	"fmt"
	"regexp"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Variables expand within bounds: a Dockerfile may come from anyone (on
// a network helper, from any of its clients), and doubling a variable
// forty times (ENV A=$A$A), or replacing every character of a long value
// with a long string (${A//?/...}), asks the expander for terabytes in
// the builder's own process, and a pattern matched against a long value
// (${A/p/r}, ${A#p}, ${A%p}) costs the product of their lengths in time.
const (
	// maxExpansion bounds what variables bring into one word.
	maxExpansion = 1 << 20
	// maxPattern bounds the value and the word of a substitution with a
	// pattern (${VAR/p/r}, ${VAR//p/r}, ${VAR#p}, ${VAR%p}, and their
	// doubled forms), whose result or time grows as their product.
	maxPattern = 4 << 10
	// maxVariables bounds a stage's ENV and ARG values and LABELs, and
	// the ARGs before the first FROM, together.
	maxVariables = 4 << 20
)

// budgetEnv is an environment that lends its values out until they add
// up to its budget; from then on it lends empty strings and says so.
type budgetEnv struct {
	env  shell.EnvGetter
	left int
	over bool
}

func (b *budgetEnv) Get(key string) (string, bool) {
	v, ok := b.env.Get(key)
	if len(v) > b.left {
		b.over = true
		return "", ok
	}
	b.left -= len(v)
	return v, ok
}

func (b *budgetEnv) Keys() []string { return b.env.Keys() }

// patterned finds the substitutions of a word that match a pattern.
var patterned = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)[/#%]`)

// expansion checks word before lex expands it in env, and returns the
// budgeted environment to expand it in.
func expansion(word string, env shell.EnvGetter) (*budgetEnv, error) {
	budget := maxExpansion
	for _, m := range patterned.FindAllStringSubmatch(word, -1) {
		if v, _ := env.Get(m[1]); len(v) > maxPattern || len(word) > maxPattern {
			return nil, fmt.Errorf("${%s...}: a substitution with a pattern is refused on a value or in a word of more than %d bytes (its cost grows as their product)", m[1], maxPattern)
		}
		budget = maxPattern
	}
	return &budgetEnv{env: env, left: budget}, nil
}

// overErr is the error of a word whose variables brought too much.
func overErr(word string) error {
	if len(word) > 64 {
		word = word[:64] + "..."
	}
	return fmt.Errorf("expanding %q: its variables bring more than %d bytes", word, maxExpansion)
}

// processWord expands word, as lex.ProcessWord does, within the bounds
// above.
func processWord(lex *shell.Lex, word string, env shell.EnvGetter) (string, error) {
	b, err := expansion(word, env)
	if err != nil {
		return "", err
	}
	w, _, err := lex.ProcessWord(word, b)
	if err == nil && b.over {
		err = overErr(word)
	}
	return w, err
}

// processWords expands and splits word, as lex.ProcessWords does, within
// the bounds above.
func processWords(lex *shell.Lex, word string, env shell.EnvGetter) ([]string, error) {
	b, err := expansion(word, env)
	if err != nil {
		return nil, err
	}
	ws, err := lex.ProcessWords(word, b)
	if err == nil && b.over {
		err = overErr(word)
	}
	return ws, err
}

// variablesSize is what a stage's variables add up to (see maxVariables).
func variablesSize(args []argValue, env []string, labels map[string]string) int {
	n := 0
	for _, a := range args {
		n += len(a.key)
		if a.value != nil {
			n += len(*a.value)
		}
	}
	for _, kv := range env {
		n += len(kv)
	}
	for k, v := range labels {
		n += len(k) + len(v)
	}
	return n
}

// checkVariables refuses variables past maxVariables.
func checkVariables(args []argValue, env []string, labels map[string]string) error {
	if n := variablesSize(args, env, labels); n > maxVariables {
		return fmt.Errorf("the stage's ENV, ARG and LABEL values add up to %d bytes, more than %d", n, maxVariables)
	}
	return nil
}
