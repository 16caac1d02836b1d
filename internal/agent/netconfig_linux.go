package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"

	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/netutil"
	"golang.org/x/sys/unix"
)

// netConfig is a MsgInstanceSetNetwork request.
type netConfig struct {
	enabled   bool
	ifname    string
	addr      netip.Prefix
	gateway   netip.Addr
	dns       string
	mtu       uint32
	createTap bool
}

// parseNetConfig checks a MsgInstanceSetNetwork request.
func parseNetConfig(m *ipc.NetworkReq) (netConfig, error) {
	c := netConfig{enabled: m.Enabled, ifname: m.Ifname, dns: m.DNS, mtu: m.MTU, createTap: m.CreateTap}
	if !c.enabled {
		return c, nil
	}
	var err error
	if c.addr, err = netip.ParsePrefix(m.Addr); err != nil || !c.addr.Addr().Is4() {
		return c, fmt.Errorf("network address %q: want an IPv4 prefix", m.Addr)
	}
	if c.gateway, err = netip.ParseAddr(m.Gateway); err != nil || !c.gateway.Is4() {
		return c, fmt.Errorf("gateway %q: want an IPv4 address", m.Gateway)
	}
	return c, nil
}

func (a *agent) registerNetConfig() {
	ipc.Route(a.mux, ipc.MsgInstanceSetNetwork, func(req *ipc.Request, m *ipc.NetworkReq) (ipc.Empty, error) {
		c, err := parseNetConfig(m)
		if err != nil {
			return ipc.Empty{}, &ipc.IPCError{Code: ipc.ErrCodeInvalidArgument, Message: err.Error()}
		}
		if !c.enabled {
			if a.frames != nil {
				a.frames.down() // gVisor: the agent's own device goes
			}
			// The host closing a TAP removes it; a device that stays (a
			// VM's NIC) goes down, which drops its routes.
			if err := setLinkDown(c.ifname); err != nil && !errors.Is(err, unix.ENODEV) {
				return ipc.Empty{}, err
			}
			return ipc.Empty{}, nil
		}
		var tap *os.File
		if c.createTap {
			if !req.CanPassDescriptors() {
				return ipc.Empty{}, &ipc.IPCError{Code: ipc.ErrCodeUnsupported, Message: "creating a TAP device needs a connection that passes descriptors"}
			}
			if tap, err = a.createTap(c.ifname); err != nil {
				return ipc.Empty{}, err
			}
		} else if a.frames != nil {
			if err := a.frames.up(c.ifname, a.createTap); err != nil {
				return ipc.Empty{}, err
			}
		}
		configure := configureLink
		if a.frames != nil {
			configure = a.frames.configure
		}
		if err := configure(c); err != nil {
			if tap != nil {
				tap.Close()
			}
			return ipc.Empty{}, err
		}
		if c.dns != "" {
			a.root.writeFile("/etc/resolv.conf", []byte("nameserver "+c.dns+"\n"), 0o644)
		}
		if tap != nil {
			req.SendFiles(tap)
		}
		return ipc.Empty{}, nil
	})
}

// createTap creates a TAP device in the sandbox's network through the
// /dev/net/tun the agent opened before the pivot.
func (a *agent) createTap(ifname string) (*os.File, error) {
	if a.tun < 0 {
		return nil, a.tunErr
	}
	f, err := netutil.OpenTap(fdPath(a.tun), ifname)
	if pe, ok := errors.AsType[*os.PathError](err); ok && pe.Op == "open" {
		return nil, tunError(pe.Err) // fdPath is no name to show
	}
	return f, err
}

// tunError explains why /dev/net/tun cannot be used.
func tunError(err error) error {
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		return &os.PathError{Op: "open", Path: "/dev/net/tun", Err: fmt.Errorf(
			"%w: egress without root needs /dev/net/tun readable and writable by this user (chmod 0666 /dev/net/tun, as most distributions ship it)", err)}
	}
	return &os.PathError{Op: "open", Path: "/dev/net/tun", Err: err}
}

// openTunPath opens /dev/net/tun as O_PATH before the pivot, so the agent
// can create devices later; the reason it cannot is kept for later too.
func openTunPath() (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, tunError(err)
	}
	// Check access now, while the error can still name the cause.
	probe, err := unix.Open(fdPath(fd), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return -1, tunError(err)
	}
	unix.Close(probe)
	return fd, nil
}

// configureLink gives the device its address, MTU and default route, and
// brings it up.
func configureLink(c netConfig) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(c.ifname)
	if err != nil {
		return err
	}
	if err := ifr.SetInet4Addr(c.addr.Addr().AsSlice()); err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCSIFADDR, ifr); err != nil {
		return fmt.Errorf("setting the address of %s: %w", c.ifname, err)
	}
	mask := netip.MustParseAddr("255.255.255.255").As4()
	bits := binary.BigEndian.Uint32(mask[:]) << (32 - c.addr.Bits())
	binary.BigEndian.PutUint32(mask[:], bits)
	ifr, _ = unix.NewIfreq(c.ifname)
	ifr.SetInet4Addr(mask[:])
	if err := unix.IoctlIfreq(s, unix.SIOCSIFNETMASK, ifr); err != nil {
		return fmt.Errorf("setting the netmask of %s: %w", c.ifname, err)
	}
	if c.mtu > 0 {
		ifr, _ = unix.NewIfreq(c.ifname)
		ifr.SetUint32(c.mtu)
		if err := unix.IoctlIfreq(s, unix.SIOCSIFMTU, ifr); err != nil {
			return fmt.Errorf("setting the MTU of %s: %w", c.ifname, err)
		}
	}
	ifr, _ = unix.NewIfreq(c.ifname)
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing %s up: %w", c.ifname, err)
	}
	return addDefaultRoute(c.gateway)
}

// addDefaultRoute adds "default via gw" with a netlink request.
func addDefaultRoute(gw netip.Addr) error {
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	g := gw.As4()
	attr := make([]byte, unix.SizeofRtAttr+4)
	binary.NativeEndian.PutUint16(attr[0:], uint16(len(attr)))
	binary.NativeEndian.PutUint16(attr[2:], unix.RTA_GATEWAY)
	copy(attr[unix.SizeofRtAttr:], g[:])
	msg := make([]byte, unix.SizeofNlMsghdr+unix.SizeofRtMsg, unix.SizeofNlMsghdr+unix.SizeofRtMsg+len(attr))
	rt := msg[unix.SizeofNlMsghdr:]
	rt[0] = unix.AF_INET       // family
	rt[4] = unix.RT_TABLE_MAIN // table
	rt[5] = unix.RTPROT_BOOT   // protocol
	rt[6] = unix.RT_SCOPE_UNIVERSE
	rt[7] = unix.RTN_UNICAST
	msg = append(msg, attr...)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], unix.RTM_NEWROUTE)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	binary.NativeEndian.PutUint32(msg[8:], 1) // sequence
	if err := unix.Sendto(s, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("adding the default route: %w", err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(s, buf, 0)
	if err != nil {
		return fmt.Errorf("adding the default route: %w", err)
	}
	if n >= unix.SizeofNlMsghdr+4 && binary.NativeEndian.Uint16(buf[4:]) == unix.NLMSG_ERROR {
		if code := int32(binary.NativeEndian.Uint32(buf[unix.SizeofNlMsghdr:])); code != 0 {
			return fmt.Errorf("adding the default route: %w", syscall.Errno(-code))
		}
	}
	return nil
}

// setLinkDown takes the interface ifname down.
func setLinkDown(ifname string) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(ifname)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() &^ unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("taking %s down: %w", ifname, err)
	}
	return nil
}
