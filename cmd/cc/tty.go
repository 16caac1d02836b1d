package main

import (
	"io"
	"os"
	"os/signal"
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
// sandbox as it is: the sandbox then writes to a pipe of the SDK's that cc
// copies, whose only other end is cc. Handed a terminal, the sandbox could
// change its modes or ask what else it shows; handed a regular file (cc
// run ... >> log), it could read the file's host path in /proc/self/fd/1,
// reopen it through that link to read what it held before, or clear
// O_APPEND and truncate it; handed the caller's pipe, a sandbox whose root
// is the caller's uid (rootless) could reopen it for reading through the
// same link and take what other host writers put into it.
func hideFile(f *os.File) io.Writer { return struct{ io.Writer }{f} }
