package dockerfile

import (
	"fmt"
	"regexp"
	"strings"

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
	// maxPatternCost bounds a substitution with a pattern (${VAR/p/r},
	// ${VAR//p/r}, ${VAR#p}, ${VAR%p}, and their doubled forms), whose
	// time, and for ${VAR//p/r} whose result, grows as the value's length
	// times the pattern's and replacement's.
	maxPatternCost = 16 << 20
	// maxVariables bounds a stage's ENV and ARG values and LABELs, and
	// the ARGs before the first FROM, together; maxVariableCount bounds
	// how many of each (so that checking them after each instruction
	// stays cheap).
	maxVariables     = 4 << 20
	maxVariableCount = 1024
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
// Names are matched as the lexer reads them (letters of any script).
var patterned = regexp.MustCompile(`\$\{([\p{L}\p{N}_]+)[/#%]+`)

// expansion checks word before lex expands it in env, and returns the
// budgeted environment to expand it in.
func expansion(word string, env shell.EnvGetter) (*budgetEnv, error) {
	for _, m := range patterned.FindAllStringSubmatchIndex(word, -1) {
		name := word[m[2]:m[3]]
		rest := word[m[1]:] // the pattern and replacement, to the brace that ends them
		if i := strings.IndexByte(rest, '}'); i >= 0 {
			rest = rest[:i]
		}
		n := len(rest)
		if strings.ContainsAny(rest, "$\\'\"`") {
			// Variables expand in the pattern and the replacement, and
			// an escape or a quote may hide the brace that ends them:
			// they may be as long as a word may grow.
			n = maxExpansion
		}
		v, _ := env.Get(name)
		if cost := (len(v) + 1) * (n + 1); cost > maxPatternCost {
			return nil, fmt.Errorf("${%s...}: a substitution with a pattern (of up to %d bytes) on a value of %d is refused: its cost grows as their product, bounded at %d", name, n, len(v), maxPatternCost)
		}
	}
	return &budgetEnv{env: env, left: maxExpansion}, nil
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
	if len(args) > maxVariableCount || len(env) > maxVariableCount || len(labels) > maxVariableCount {
		return fmt.Errorf("the stage has %d ARGs, %d ENV variables and %d LABELs; at most %d of each", len(args), len(env), len(labels), maxVariableCount)
	}
	if n := variablesSize(args, env, labels); n > maxVariables {
		return fmt.Errorf("the stage's ENV, ARG and LABEL values add up to %d bytes, more than %d", n, maxVariables)
	}
	return nil
}
