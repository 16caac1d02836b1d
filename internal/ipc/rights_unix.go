//go:build unix

package ipc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// canPassDescriptors reports whether Unix sockets here carry SCM_RIGHTS.
const canPassDescriptors = true

// oobSpace is the control-message space for one message's descriptors.
var oobSpace = syscall.CmsgSpace(maxFilesPerMessage * 4)

// errDescriptorsDropped is recvWithRights' error for a message whose
// descriptors the kernel dropped: the receiver had no room for them.
var errDescriptorsDropped = errors.New("descriptors of a message were dropped")

// recvWithRights reads into p, appending descriptors that arrive to files.
// Received descriptors are close-on-exec where the platform allows. A
// message whose descriptors did not all arrive (more than a message may
// carry, or more than RLIMIT_NOFILE leaves room for) is an error matching
// errDescriptorsDropped.
func recvWithRights(uc *net.UnixConn, p, oob []byte, files *[]*os.File) (int, error) {
	n, oobn, flags, _, err := uc.ReadMsgUnix(p, oob)
	if oobn > 0 {
		if perr := parseRights(oob[:oobn], files); perr != nil && err == nil {
			err = perr
		}
	}
	if err == nil && flags&syscall.MSG_CTRUNC != 0 {
		err = fmt.Errorf("ipc: %w: more than %d in one message, or no room for them under this process's open files limit (RLIMIT_NOFILE)", errDescriptorsDropped, maxFilesPerMessage)
	}
	return n, err
}

// parseRights turns SCM_RIGHTS control messages into files appended to files.
func parseRights(oob []byte, files *[]*os.File) error {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return fmt.Errorf("ipc: parsing control message: %w", err)
	}
	for i := range msgs {
		fds, err := syscall.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		for _, fd := range fds {
			*files = append(*files, os.NewFile(uintptr(fd), "ipc-received"))
		}
	}
	return nil
}

// sendWithRights writes b with the descriptors of files attached. The files
// stay open and owned by the caller, and keep their blocking mode (File.Fd
// would switch them to blocking).
func sendWithRights(uc *net.UnixConn, b []byte, files []*os.File) error {
	var sendErr error
	err := withFds(files, nil, func(fds []int) {
		_, _, sendErr = uc.WriteMsgUnix(b, syscall.UnixRights(fds...), nil)
	})
	if err != nil {
		return err
	}
	return sendErr
}

// withFds calls fn with the descriptor numbers of files, each held valid (not
// closed by another goroutine) for the duration of the call.
func withFds(files []*os.File, fds []int, fn func([]int)) error {
	if len(files) == 0 {
		fn(fds)
		return nil
	}
	rc, err := files[0].SyscallConn()
	if err != nil {
		return fmt.Errorf("ipc: sending %s: %w", files[0].Name(), err)
	}
	var inner error
	err = rc.Control(func(fd uintptr) {
		inner = withFds(files[1:], append(fds, int(fd)), fn)
	})
	if err != nil {
		return fmt.Errorf("ipc: sending %s: %w", files[0].Name(), err)
	}
	return inner
}
