package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
)

// pty is the master side of a terminal cc runs on, with what it printed.
type pty struct {
	master *os.File
	mu     sync.Mutex
	out    strings.Builder // guarded by mu
	more   chan struct{}   // gets a value after each read
	eof    chan struct{}   // closed once the terminal's other side is gone
}

// startOnPTY starts cc with args on a new terminal of rows×cols, as its
// controlling terminal and standard streams.
func startOnPTY(t *testing.T, rows, cols uint16, args ...string) (*pty, func() int) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := ccCommand(ctx, "", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err = cmd.Start()
	s.Close()
	if err != nil {
		cancel()
		m.Close()
		t.Fatal(err)
	}
	p := &pty{master: m, more: make(chan struct{}, 1), eof: make(chan struct{})}
	go p.read()
	wait := func() int {
		defer cancel()
		cmd.Wait()
		<-p.eof
		m.Close()
		return cmd.ProcessState.ExitCode()
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			wait()
		}
	})
	return p, wait
}

func (p *pty) read() {
	defer close(p.eof)
	buf := make([]byte, 4096)
	for {
		n, err := p.master.Read(buf)
		p.mu.Lock()
		p.out.Write(buf[:n])
		p.mu.Unlock()
		select {
		case p.more <- struct{}{}:
		default:
		}
		if err != nil {
			return // EIO once no one has the terminal open
		}
	}
}

func (p *pty) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor waits until the terminal has shown s.
func (p *pty) waitFor(t *testing.T, s string) {
	t.Helper()
	for !strings.Contains(p.output(), s) {
		select {
		case <-p.more:
		case <-p.eof:
			if !strings.Contains(p.output(), s) {
				t.Fatalf("the terminal closed without showing %q: %q", s, p.output())
			}
		}
	}
}

// TestRunTTY runs cc run -it on a terminal: the command has a terminal of
// the same size, follows its resizes, gets Ctrl-C as a keystroke, and its
// exit code passes through.
func TestRunTTY(t *testing.T) {
	leakcheck.Check(t)
	script := `test -t 0 && test -t 1 && echo on-a-tty; echo size $(stty size)
while [ "$(stty size)" = "40 100" ]; do sleep 0.05; done
echo resized $(stty size)
trap 'echo got-int; exit 5' INT
echo ready
while :; do sleep 0.05; done`
	p, wait := startOnPTY(t, 40, 100, "run", "-it", "host", "sh", "-c", script)
	p.waitFor(t, "size 40 100")
	if err := unix.IoctlSetWinsize(int(p.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 50, Col: 120}); err != nil {
		t.Fatal(err)
	}
	p.waitFor(t, "resized 50 120")
	p.waitFor(t, "ready")
	if _, err := p.master.Write([]byte{3}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	if code := wait(); code != 5 {
		t.Errorf("cc run -it exited %d, want the command's 5; the terminal showed %q", code, p.output())
	}
	if out := p.output(); !strings.Contains(out, "on-a-tty") || !strings.Contains(out, "got-int") {
		t.Errorf("the terminal showed %q; want on-a-tty and got-int", out)
	}
}

// TestRunBackgroundOnTTY checks that cc run ends with its command, as
// docker run does, though a process the command left in the background
// still holds the terminal: with -t, and without (where cc copies the
// output rather than hand the sandbox its terminal).
func TestRunBackgroundOnTTY(t *testing.T) {
	leakcheck.Check(t)
	for _, c := range []struct {
		code int
		args []string
	}{
		{4, []string{"run", "host", "sh", "-c", "sleep 1000 & echo started; exit 4"}},
		{0, []string{"run", "host", "sh", "-c", "sleep 1000 & echo started"}},
		{4, []string{"run", "-t", "host", "sh", "-c", "sleep 1000 & echo started; exit 4"}},
		{0, []string{"run", "-t", "host", "sh", "-c", "sleep 1000 & echo started"}},
	} {
		p, wait := startOnPTY(t, 24, 80, c.args...)
		p.waitFor(t, "started")
		if code := wait(); code != c.code {
			t.Errorf("cc %s exited %d, want %d; the terminal showed %q", strings.Join(c.args, " "), code, c.code, p.output())
		}
	}
}
