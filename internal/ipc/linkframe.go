package ipc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
)

// MaxLinkFrame bounds an ethernet frame on a MsgRemoteTap stream: the
// largest a TAP device or a packet socket gives in one read.
const MaxLinkFrame = 1 << 16

// ReadLinkFrame reads one frame of a MsgRemoteTap stream (a u32 length,
// then the ethernet frame) into buf, which must hold MaxLinkFrame bytes,
// and returns it. A length beyond MaxLinkFrame is an error.
func ReadLinkFrame(r io.Reader, buf []byte) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	l := binary.BigEndian.Uint32(n[:])
	if l > MaxLinkFrame || int(l) > len(buf) {
		return nil, fmt.Errorf("link frame of %d bytes: the most is %d", l, MaxLinkFrame)
	}
	if _, err := io.ReadFull(r, buf[:l]); err != nil {
		return nil, err
	}
	return buf[:l], nil
}

// WriteLinkFrame writes frame on a MsgRemoteTap stream, in one Write.
func WriteLinkFrame(w io.Writer, frame []byte) error {
	if len(frame) > MaxLinkFrame {
		return fmt.Errorf("link frame of %d bytes: the most is %d", len(frame), MaxLinkFrame)
	}
	b := make([]byte, 4+len(frame))
	binary.BigEndian.PutUint32(b, uint32(len(frame)))
	copy(b[4:], frame)
	_, err := w.Write(b)
	return err
}

// RelayLinkFrames carries frames between link, a device or packet socket
// that gives one frame a read, and stream, a MsgRemoteTap connection,
// until either ends or fails; it then closes both and returns once both
// directions have stopped. The error is the first failure other than an
// end of stream.
func RelayLinkFrames(link *os.File, stream net.Conn) error {
	var (
		once  sync.Once
		first error
		wg    sync.WaitGroup
	)
	stop := func(err error) {
		once.Do(func() {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrClosed) {
				first = err
			}
			link.Close()
			stream.Close()
		})
	}
	wg.Add(2)
	go func() { // device -> stream, each frame read behind room for its length
		defer wg.Done()
		buf := make([]byte, 4+MaxLinkFrame)
		for {
			n, err := link.Read(buf[4:])
			if err != nil {
				stop(err)
				return
			}
			if n == 0 { // the peer of a packet socket closed
				stop(io.EOF)
				return
			}
			binary.BigEndian.PutUint32(buf, uint32(n))
			if _, err := stream.Write(buf[:4+n]); err != nil {
				stop(err)
				return
			}
		}
	}()
	go func() { // stream -> device
		defer wg.Done()
		buf := make([]byte, MaxLinkFrame)
		for {
			frame, err := ReadLinkFrame(stream, buf)
			if err != nil {
				stop(err)
				return
			}
			if _, err := link.Write(frame); err != nil {
				stop(err)
				return
			}
		}
	}()
	wg.Wait()
	return first
}
