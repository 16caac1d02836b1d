package vm

import (
	"bufio"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// consoleLines is how many of the guest console's last lines a sandbox
// keeps for its errors.
const consoleLines = 40

// console collects the guest's console (kernel messages, the agent's
// errors) and QEMU's own messages: each line goes to the logger, and the
// last ones are kept for error messages.
type console struct {
	log *slog.Logger
	id  string

	mu   sync.Mutex
	tail []string // guarded by mu: the last consoleLines lines
}

// copy reads r to its end, then closes done.
func (c *console) copy(r io.ReadCloser, done chan<- struct{}) {
	defer close(done)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "cc agent") || strings.HasPrefix(line, "qemu") {
			c.log.Warn("sandbox vm", "id", c.id, "line", line)
		} else {
			c.log.Debug("sandbox vm console", "id", c.id, "line", line)
		}
		c.mu.Lock()
		c.tail = append(c.tail, line)
		if len(c.tail) > consoleLines {
			c.tail = c.tail[len(c.tail)-consoleLines:]
		}
		c.mu.Unlock()
	}
}

// last returns the kept lines, for an error message.
func (c *console) last() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.tail) == 0 {
		return "(the console is empty)"
	}
	return strings.Join(c.tail, "\n")
}
