package helper

import (
	"context"
	"fmt"
	"os"

	"github.com/ccsandbox/sandbox/internal/ipc"
	"golang.org/x/sys/unix"
)

// StreamTap has the helper create the sandbox's egress device, configured
// as req says (MsgRemoteTap), and returns this process's end of it: a
// packet socket that gives and takes one ethernet frame a read or write,
// relayed over a connection of its own to the helper, which relays them
// to and from the device. Closing the returned file ends the relay, the
// connection and the device. It returns the helper's error, or a
// *ipc.TransportError when the helper cannot be reached.
func (ni *NetInstance) StreamTap(ctx context.Context, req ipc.NetworkReq) (*os.File, error) {
	var e ipc.Encoder
	req.Encode(&e)
	_, conn, err := ni.agent.Hijack(ctx, ipc.Message{Type: ipc.MsgRemoteTap, Payload: e.Bytes()})
	if err != nil {
		return nil, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("the egress device's socket: %w", os.NewSyscallError("socketpair", err))
	}
	unix.SetNonblock(fds[1], true) // pollable: closing it ends a read in progress
	go ipc.RelayLinkFrames(os.NewFile(uintptr(fds[1]), "egress relay"), conn)
	return os.NewFile(uintptr(fds[0]), "egress link"), nil
}
