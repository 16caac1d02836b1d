package ipc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// A channel carries connections as descriptors (extension): each message on
// a SOCK_SEQPACKET socket pair holds one end of a fresh stream socket pair.
// The sandbox engine gives one end of a channel to the agent it starts, so
// the host can open any number of connections to the agent without a socket
// path: no file to protect, no path-length limit, no network namespace in
// the way. When either side dies, the channel breaks and the other side
// notices at once.

// NewChannel returns the two ends of a new channel. Each end is a file the
// caller owns; hand one to another process and keep the other.
func NewChannel() (local, remote *os.File, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	return os.NewFile(uintptr(fds[0]), "ipc-channel"), os.NewFile(uintptr(fds[1]), "ipc-channel"), nil
}

// channelConn turns a channel end into a *net.UnixConn; f is closed.
func channelConn(f *os.File) (*net.UnixConn, error) {
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("ipc: channel is a %T, not a Unix socket", c)
	}
	return uc, nil
}

// ChannelDialer opens connections over a channel end.
type ChannelDialer struct {
	mu sync.Mutex // serialises sends on ch
	ch *net.UnixConn
}

// NewChannelDialer takes ownership of f, one end of a channel.
func NewChannelDialer(f *os.File) (*ChannelDialer, error) {
	uc, err := channelConn(f)
	if err != nil {
		return nil, err
	}
	return &ChannelDialer{ch: uc}, nil
}

// Dial makes a new stream socket pair, sends one end over the channel and
// returns the other as the connection. It is a [DialFunc].
func (d *ChannelDialer) Dial(ctx context.Context) (net.Conn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socketpair", err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "ipc-conn"), os.NewFile(uintptr(fds[1]), "ipc-conn")
	defer theirs.Close()
	d.mu.Lock()
	err = sendWithRights(d.ch, []byte{0}, []*os.File{theirs})
	d.mu.Unlock()
	if err != nil {
		mine.Close()
		return nil, fmt.Errorf("ipc: sending a connection over the channel: %w", err)
	}
	c, err := net.FileConn(mine)
	mine.Close()
	return c, err
}

// channelBufs hold the messages Receive reads: no channel keeps a buffer
// of its own while it waits.
var channelBufs = sync.Pool{New: func() any { return new([maxChannelMessage]byte) }}

// maxChannelMessage bounds what Receive reads of one message; the rest of a
// longer one is dropped.
const maxChannelMessage = 16 << 10

// Receive reads what the other end writes on the channel (extension): the
// bytes of each message go to handle, descriptors sent along are closed. A
// process that holds the listening end can so report on the channel (its
// log, written as messages), and its end is seen as soon as it is gone.
// Receive holds no buffer while it waits. It returns nil once every copy of
// the other end is closed, and an error matching net.ErrClosed after Close.
func (d *ChannelDialer) Receive(handle func([]byte)) error {
	rc, err := d.ch.SyscallConn()
	if err != nil {
		return err
	}
	for {
		var n int
		var rerr error
		var hup bool
		err := rc.Read(func(fd uintptr) bool {
			buf := channelBufs.Get().(*[maxChannelMessage]byte)
			defer channelBufs.Put(buf)
			var oob [64]byte // a few descriptors, all closed
			var oobn int
			n, oobn, _, _, rerr = syscall.Recvmsg(int(fd), buf[:], oob[:], syscall.MSG_DONTWAIT|syscall.MSG_CMSG_CLOEXEC)
			if rerr == syscall.EAGAIN {
				return false
			}
			if oobn > 0 {
				var files []*os.File
				parseRights(oob[:oobn], &files)
				closeFiles(files)
			}
			if rerr == nil && n > 0 {
				handle(buf[:min(n, len(buf))])
			}
			if rerr == nil && n == 0 {
				// The end of the stream, or an empty message: only the
				// hang-up tells them apart.
				pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
				unix.Poll(pfd, 0)
				hup = pfd[0].Revents&unix.POLLHUP != 0
			}
			return true
		})
		switch {
		case err != nil:
			return err
		case rerr == syscall.EINTR:
		case rerr != nil:
			return os.NewSyscallError("recvmsg", rerr)
		case hup:
			return nil // the other end is gone
		}
	}
}

// Close closes the channel end; the listening side's Accept then fails
// once every copy of the end is closed.
func (d *ChannelDialer) Close() error { return d.ch.Close() }

// File returns a duplicate of the channel end, for another process to dial
// through (the caller owns it).
func (d *ChannelDialer) File() (*os.File, error) { return d.ch.File() }

// ChannelListener accepts the connections a ChannelDialer sends.
type ChannelListener struct {
	ch  *net.UnixConn
	mu  sync.Mutex // serialises receives
	oob []byte
}

// NewChannelListener takes ownership of f, one end of a channel.
func NewChannelListener(f *os.File) (*ChannelListener, error) {
	uc, err := channelConn(f)
	if err != nil {
		return nil, err
	}
	return &ChannelListener{ch: uc, oob: make([]byte, syscall.CmsgSpace(4))}, nil
}

// Accept waits for the next connection. It returns net.ErrClosed (wrapped)
// after Close, and io.EOF when the dialing side has gone. A connection
// this process has no room for (its open files limit) is dropped, which
// its dialer sees as the connection closed, and Accept waits for the next.
func (l *ChannelListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		var files []*os.File
		var b [1]byte
		n, err := recvWithRights(l.ch, b[:], l.oob, &files)
		if errors.Is(err, errDescriptorsDropped) {
			// The connection did not arrive: the kernel closed it, which
			// the host sees. Its lack of room passes as connections end.
			closeFiles(files)
			continue
		}
		if err != nil {
			closeFiles(files)
			return nil, err
		}
		if n == 0 && len(files) == 0 {
			return nil, net.ErrClosed // the other end closed: seqpacket EOF
		}
		if len(files) != 1 {
			closeFiles(files)
			continue // a message without exactly one descriptor: ignore it
		}
		c, err := net.FileConn(files[0])
		files[0].Close()
		if err != nil {
			continue // no room for its copy (EMFILE) or not a socket: it is closed
		}
		return c, nil
	}
}

// Close closes the channel end.
func (l *ChannelListener) Close() error { return l.ch.Close() }

// Addr returns the channel's local address.
func (l *ChannelListener) Addr() net.Addr { return l.ch.LocalAddr() }
