package agent

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
)

// frameLink is a gVisor sandbox's egress device: gVisor's network stack
// runs inside the sandbox, where the host cannot attach a device, so the
// agent creates a TAP device there and copies its frames to and from the
// host's datagram socket (GVisorFdFrames), one frame per datagram. The
// device exists between up and down; frames that arrive while it does not
// are dropped, as a cable without a machine drops them.
type frameLink struct {
	host net.PacketConn // the host's frames; closed by close
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
	pc, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		log.Warn("egress: the host's frame socket", "err", err)
		return l
	}
	l.host = pc
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
		if _, err := l.host.WriteTo(buf[:n], nil); err != nil && errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// fromHost copies the host's frames to the device while there is one.
func (l *frameLink) fromHost() {
	buf := make([]byte, 1<<16)
	for {
		n, _, err := l.host.ReadFrom(buf)
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
