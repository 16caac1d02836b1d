package netutil

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// OpenTap creates the TAP device ifname (Ethernet frames, no packet
// information) in the network namespace of the calling thread, through
// the tun device at tun (/dev/net/tun, or a path naming an open
// descriptor of it), and returns it non-blocking. A failure to open tun is
// an *os.PathError whose Err is the errno.
func OpenTap(tun, ifname string) (*os.File, error) {
	fd, err := unix.Open(tun, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: tun, Err: err}
	}
	ifr, err := unix.NewIfreq(ifname)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("creating the TAP device %s: %w", ifname, err)
	}
	return os.NewFile(uintptr(fd), "tap-"+ifname), nil
}
