package sandbox

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// BuildProgressWriter returns a WithBuildProgress function that prints a
// build's progress on w as plain lines, numbering steps as they start and
// naming the stage on every line (stages that do not need each other run
// at the same time, so their lines interleave):
//
//	#3 [build 2/5] RUN make
//	#3 [build] gcc -o app main.c
//	#3 [build] DONE 1.2s
//	#4 [build 3/5] COPY app /usr/bin/
//	#4 [build] CACHED
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
			fmt.Fprintf(w, "#%d [%s] %s\n", num, p.Stage, p.Output)
		case p.Done && p.Cached:
			fmt.Fprintf(w, "#%d [%s] CACHED\n", num, p.Stage)
		case p.Done:
			fmt.Fprintf(w, "#%d [%s] DONE %.1fs\n", num, p.Stage, time.Since(started[id]).Seconds())
		}
	}
}
