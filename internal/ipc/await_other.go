//go:build !linux

package ipc

import "errors"

// AwaitReadable blocks until fd turns readable (extension); agents run on
// Linux only, so elsewhere it returns an error.
func (r *Request) AwaitReadable(fd int) error {
	return errors.New("ipc: AwaitReadable needs Linux")
}

// signalClose does nothing where AwaitReadable does not exist.
func (s *Server) signalClose() {}

// awaitAnswer leaves the waiting to the read that follows.
func (c *Client) awaitAnswer(mc *msgConn) {}
