package sandbox

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// BuildProgressWriter returns a WithBuildProgress function that prints a
// build's progress on w as plain lines, numbering steps as they start:
//
//	#3 [stage-0 2/5] RUN make
//	#3 gcc -o app main.c
//	#3 DONE 1.2s
//	#4 [stage-0 3/5] COPY app /usr/bin/
//	#4 CACHED
func BuildProgressWriter(w io.Writer) func(BuildProgress) {
	var (
		mu      sync.Mutex
		n       int
		current = map[string]int{} // stage and step -> number
		started = map[string]time.Time{}
	)
	return func(p BuildProgress) {
		mu.Lock()
		defer mu.Unlock()
		if p.Step == 0 {
			fmt.Fprintln(w, p.Output)
			return
		}
		id := fmt.Sprintf("%s/%d", p.Stage, p.Step)
		if !p.Done && p.Output == "" { // a step starts
			n++
			current[id] = n
			started[id] = time.Now()
			fmt.Fprintf(w, "#%d [%s %d/%d] %s\n", n, p.Stage, p.Step, p.Total, p.Instruction)
			return
		}
		num := current[id]
		switch {
		case p.Output != "":
			fmt.Fprintf(w, "#%d %s\n", num, p.Output)
		case p.Done && p.Cached:
			fmt.Fprintf(w, "#%d CACHED\n", num)
		case p.Done:
			fmt.Fprintf(w, "#%d DONE %.1fs\n", num, time.Since(started[id]).Seconds())
		}
	}
}
