package ipc

import (
	"context"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// AwaitReadable blocks until fd turns readable (for a pidfd: its process
// has exited) and returns nil, or returns Context's error when the client
// hangs up or the server closes first (extension). It waits in a single
// poll(2) on fd, the request's connection and the server's close signal,
// so fd turning readable wakes the handler's own thread and nothing else:
// a handler that waited on a channel fed by another goroutine would pay a
// thread wake-up more, and the hang-up watch of Context another. Where the
// connection has no descriptor, or the client has already sent its next
// request, it waits through Context. The caller keeps fd open until
// AwaitReadable returns.
func (r *Request) AwaitReadable(fd int) error {
	if r.sc == nil || r.sc.mc.uc == nil || r.watching {
		return r.awaitThroughContext(fd)
	}
	wake, err := r.sc.srv.closeEvent()
	if err != nil {
		return err
	}
	rc, err := r.sc.mc.uc.SyscallConn()
	if err != nil {
		return r.awaitThroughContext(fd)
	}
	var ready, early bool
	cerr := rc.Control(func(conn uintptr) {
		fds := []unix.PollFd{
			{Fd: int32(fd), Events: unix.POLLIN},
			{Fd: int32(conn), Events: unix.POLLIN | unix.POLLRDHUP},
			{Fd: int32(wake), Events: unix.POLLIN},
		}
		for {
			if _, err := poll(fds, -1); err != nil {
				return // treated as a hang-up
			}
			if fds[0].Revents != 0 {
				ready = true
				return
			}
			if fds[2].Revents != 0 || fds[1].Revents&^unix.POLLIN != 0 {
				return // closing, or hung up
			}
			// Readable: the next request came early, or an end of file.
			var b [1]byte
			n, _, err := unix.Recvfrom(int(conn), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			early = n > 0
			return
		}
	})
	switch {
	case cerr != nil:
		return r.awaitThroughContext(fd)
	case ready:
		return nil
	case early:
		return r.awaitThroughContext(fd)
	}
	r.sc.hungUp = true
	return context.Canceled
}

// awaitThroughContext waits for fd on a goroutine of its own, against
// Context. That goroutine polls a duplicate of fd, so it may outlive the
// call (until fd turns readable) without touching a descriptor the caller
// has closed.
func (r *Request) awaitThroughContext(fd int) error {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer unix.Close(dup)
		poll([]unix.PollFd{{Fd: int32(dup), Events: unix.POLLIN}}, -1)
	}()
	select {
	case <-done:
		return nil
	case <-r.Context().Done():
		return r.Context().Err()
	}
}

// closeEvent returns an eventfd that turns readable when the server closes,
// made on first use; it returns net.ErrClosed once the server has closed.
func (s *Server) closeEvent() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return -1, net.ErrClosed
	}
	if s.closeEv == nil {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
		if err != nil {
			return -1, os.NewSyscallError("eventfd", err)
		}
		s.closeEv = os.NewFile(uintptr(fd), "ipc-close")
	}
	return int(s.closeEv.Fd()), nil
}

// signalClose makes the close event readable; the server's mu is held.
func (s *Server) signalClose() {
	if s.closeEv != nil {
		s.closeEv.Write([]byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}

// awaitPeriod is how often a thread waiting for an answer in awaitAnswer
// checks whether the client has closed: closing a descriptor does not wake
// a poll(2) on it.
const awaitPeriod = 50 * time.Millisecond

// awaitAnswer waits in poll(2), on the calling thread, until mc has bytes
// to read, its peer hangs up, or the client closes; the read that follows
// finds out which.
func (c *Client) awaitAnswer(mc *msgConn) {
	if mc.uc == nil || mc.w > mc.r {
		return
	}
	rc, err := mc.uc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		for {
			if n, err := poll(fds, int(awaitPeriod/time.Millisecond)); err != nil || n > 0 {
				return
			}
			// Not c.Err: markDead holds c.mu while it closes mc, which
			// waits for this function to return.
			select {
			case <-c.deadCh:
				return
			default:
			}
		}
	})
}

// poll is unix.Poll, resumed when a signal interrupts it.
func poll(fds []unix.PollFd, timeout int) (int, error) {
	for {
		n, err := unix.Poll(fds, timeout)
		if err != unix.EINTR {
			return n, err
		}
	}
}
