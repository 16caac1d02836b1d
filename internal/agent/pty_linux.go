package agent

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openPty opens a new pseudo-terminal pair in the sandbox's devpts.
func openPty(rows, cols uint16) (master, slave *os.File, err error) {
	mfd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("opening /dev/ptmx: %w", err)
	}
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(mfd)
		return nil, nil, fmt.Errorf("unlocking the pty: %w", err)
	}
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		unix.Close(mfd)
		return nil, nil, fmt.Errorf("opening the pty's peer: %w", errno)
	}
	master, slave = os.NewFile(uintptr(mfd), "/dev/ptmx"), os.NewFile(sfd, "pty")
	if rows > 0 && cols > 0 {
		setWinsize(master, rows, cols)
	}
	return master, slave, nil
}

// setWinsize sets the terminal size of a pty.
func setWinsize(f *os.File, rows, cols uint16) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	rc.Control(func(fd uintptr) {
		serr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	})
	return serr
}
