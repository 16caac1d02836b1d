package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// frameLink is a gVisor sandbox's egress device: gVisor's network stack
// runs inside the sandbox, where the host cannot attach a device, so the
// agent creates a TAP device there and copies its frames to and from the
// host's datagram socket (GVisorFdFrames), one frame per datagram. The
// device exists between up and down; frames that arrive while it does not
// are dropped, as a cable without a machine drops them.
type frameLink struct {
	host net.Conn // the host's frames, a connected datagram socket; closed by close
	log  *slog.Logger

	mu   sync.Mutex
	tap  *os.File      // guarded by mu: the device, nil while down
	done chan struct{} // guarded by mu: closed when tap's reader has stopped
}

// newFrameLink starts relaying the host's frames from f (taking
// ownership of f). A link without a usable socket stays down for good:
// up reports why.
func newFrameLink(f *os.File, log *slog.Logger) *frameLink {
	l := &frameLink{log: log}
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		log.Warn("egress: the host's frame socket", "err", err)
		return l
	}
	l.host = c
	go l.fromHost()
	return l
}

// up creates the device ifname with create (a TAP device of gVisor's
// stack) unless it exists, and relays its frames to the host.
func (l *frameLink) up(ifname string, create func(string) (*os.File, error)) error {
	if l.host == nil {
		return errors.New("this sandbox has no frame socket for an egress device")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tap != nil {
		return nil
	}
	tap, err := create(ifname)
	if err != nil {
		return err
	}
	l.tap = tap
	l.done = make(chan struct{})
	go l.toHost(tap, l.done)
	return nil
}

// down removes the device, which ends its flows.
func (l *frameLink) down() {
	l.mu.Lock()
	tap, done := l.tap, l.done
	l.tap = nil
	l.mu.Unlock()
	if tap != nil {
		tap.Close()
		<-done
	}
}

// close removes the device and stops relaying.
func (l *frameLink) close() {
	l.down()
	if l.host != nil {
		l.host.Close()
	}
}

// toHost copies the device's frames to the host until the device closes.
func (l *frameLink) toHost(tap *os.File, done chan struct{}) {
	defer close(done)
	buf := make([]byte, 1<<16)
	for {
		n, err := tap.Read(buf)
		if err != nil {
			return
		}
		if _, err := l.host.Write(buf[:n]); err != nil && errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// fromHost copies the host's frames to the device while there is one.
func (l *frameLink) fromHost() {
	buf := make([]byte, 1<<16)
	for {
		n, err := l.host.Read(buf)
		if err != nil {
			return
		}
		l.mu.Lock()
		tap := l.tap
		l.mu.Unlock()
		if tap != nil {
			tap.Write(buf[:n])
		}
	}
}

// configure gives the device its address, MTU and default route and
// brings it up, with netlink requests: gVisor's stack does not take the
// interface ioctls configureLink uses.
func (l *frameLink) configure(c netConfig) error {
	ifi, err := net.InterfaceByName(c.ifname)
	if err != nil {
		return err
	}
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	addr := c.addr.Addr().As4()
	am := make([]byte, unix.SizeofIfAddrmsg)
	am[0] = unix.AF_INET
	am[1] = byte(c.addr.Bits())
	binary.NativeEndian.PutUint32(am[4:], uint32(ifi.Index))
	am = appendAttr(am, unix.IFA_LOCAL, addr[:])
	am = appendAttr(am, unix.IFA_ADDRESS, addr[:])
	if err := netlinkCall(s, unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, am); err != nil {
		return fmt.Errorf("setting the address of %s: %w", c.ifname, err)
	}
	lm := make([]byte, unix.SizeofIfInfomsg)
	lm[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(lm[4:], uint32(ifi.Index))
	binary.NativeEndian.PutUint32(lm[8:], unix.IFF_UP)  // flags
	binary.NativeEndian.PutUint32(lm[12:], unix.IFF_UP) // change
	if c.mtu > 0 {
		lm = appendAttr(lm, unix.IFLA_MTU, binary.NativeEndian.AppendUint32(nil, c.mtu))
	}
	if err := netlinkCall(s, unix.RTM_NEWLINK, 0, lm); err != nil {
		return fmt.Errorf("bringing %s up: %w", c.ifname, err)
	}
	// gVisor's routes need their device: a gateway alone gives a route
	// that reaches nothing.
	gw := c.gateway.As4()
	rt := make([]byte, unix.SizeofRtMsg)
	rt[0] = unix.AF_INET
	rt[4] = unix.RT_TABLE_MAIN
	rt[5] = unix.RTPROT_BOOT
	rt[6] = unix.RT_SCOPE_UNIVERSE
	rt[7] = unix.RTN_UNICAST
	rt = appendAttr(rt, unix.RTA_GATEWAY, gw[:])
	rt = appendAttr(rt, unix.RTA_OIF, binary.NativeEndian.AppendUint32(nil, uint32(ifi.Index)))
	if err := netlinkCall(s, unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, rt); err != nil {
		return fmt.Errorf("adding the default route: %w", err)
	}
	return nil
}

// appendAttr appends a netlink attribute to b.
func appendAttr(b []byte, typ uint16, data []byte) []byte {
	n := unix.SizeofRtAttr + len(data)
	b = binary.NativeEndian.AppendUint16(b, uint16(n))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// netlinkCall sends one request on the route socket s and returns the
// error it answers.
func netlinkCall(s int, typ uint16, flags uint16, body []byte) error {
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	msg = append(msg, body...)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags)
	binary.NativeEndian.PutUint32(msg[8:], 1)
	if err := unix.Sendto(s, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(s, buf, 0)
	if err != nil {
		return err
	}
	if n >= unix.SizeofNlMsghdr+4 && binary.NativeEndian.Uint16(buf[4:]) == unix.NLMSG_ERROR {
		if code := int32(binary.NativeEndian.Uint32(buf[unix.SizeofNlMsghdr:])); code != 0 {
			return syscall.Errno(-code)
		}
	}
	return nil
}
