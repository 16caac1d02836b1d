package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ccsandbox/sandbox"
	"golang.org/x/term"
)

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// terminalOf returns the first of files that is a terminal, or nil.
func terminalOf(files ...*os.File) *os.File {
	for _, f := range files {
		if isTerminal(f) {
			return f
		}
	}
	return nil
}

// sizeFollower keeps a command's terminal (Cmd.Tty) the size of a
// terminal of ours.
type sizeFollower struct {
	cmd  *sandbox.Cmd
	tty  *os.File
	ch   chan os.Signal
	done chan struct{}
}

// followSize sets the initial size of c's terminal to tty's; call it
// before c starts, then start once c has.
func followSize(c *sandbox.Cmd, tty *os.File) *sizeFollower {
	f := &sizeFollower{cmd: c, tty: tty, ch: make(chan os.Signal, 1), done: make(chan struct{})}
	signal.Notify(f.ch, syscall.SIGWINCH)
	f.resize()
	return f
}

// resize gives the command's terminal our terminal's size.
func (f *sizeFollower) resize() {
	w, h, err := term.GetSize(int(f.tty.Fd()))
	if err == nil && w > 0 && h > 0 && w <= 0xffff && h <= 0xffff {
		f.cmd.SetConsoleSize(uint16(h), uint16(w))
	}
}

// start follows resizes (SIGWINCH) until stop.
func (f *sizeFollower) start() {
	f.resize() // in case one came before the command started
	go func() {
		for {
			select {
			case <-f.ch:
				f.resize()
			case <-f.done:
				return
			}
		}
	}()
}

func (f *sizeFollower) stop() {
	signal.Stop(f.ch)
	close(f.done)
}

// hideFile hides f from the SDK, which would otherwise hand it to the
// sandbox as it is, unless it is an anonymous pipe: the sandbox then
// writes to a pipe that cc copies. Handed a terminal, the sandbox could
// change its modes or ask what else it shows; handed a regular file (cc
// run ... >> log), it could read the file's host path in
// /proc/self/fd/1, reopen it through that link to read what it held
// before, or clear O_APPEND and truncate it. A pipe's far end is all it
// reaches through a pipe, so pipes are handed over for speed.
func hideFile(f *os.File) io.Writer {
	if anonymousPipe(f) {
		return f
	}
	return struct{ io.Writer }{f}
}

// anonymousPipe reports whether f is a pipe with no name on any file
// system (a shell's |), which the kernel names pipe:[inode].
func anonymousPipe(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		return false
	}
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	return err == nil && strings.HasPrefix(target, "pipe:")
}
