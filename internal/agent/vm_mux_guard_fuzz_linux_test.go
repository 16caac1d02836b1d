package agent

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
	"time"
)

// FuzzGuestFrames feeds guestFrames whatever a guest might send, split
// anyhow. It must not panic or pass more than it read, and what it passes
// must be whole frames it would pass again: no frame that opens a stream,
// no header cut from its payload. closed marks streams 1, 3, ... 15 as
// closed by the host, whose data is dropped.
func FuzzGuestFrames(f *testing.F) {
	f.Add(frame(frameData, 0, 1, 3, []byte("abc")), false, uint8(0))
	f.Add(append(pingRequest(1), frame(frameWindow, frameFlagSYN, 3, 0, nil)...), true, uint8(0))
	f.Add(append(frame(frameData, 0, 1, 24, pingRequest(2)), pingRequest(3)...), true, uint8(0))
	f.Add(append(frame(frameData, 0, 3, 24, pingRequest(2)), frame(frameData, frameFlagFIN, 3, 2, []byte("ab"))...), true, uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, bytewise bool, closed uint8) {
		clock := time.Unix(1000, 0)
		var r io.Reader = bytes.NewReader(in)
		if bytewise {
			r = iotest.OneByteReader(r)
		}
		g := newGuestFrames(rwc{r})
		g.now = func() time.Time { return clock }
		g.pings = pingBudget{tokens: pingBurst, last: clock}
		for i := range 8 {
			if closed&(1<<i) != 0 {
				g.closeStream(uint32(2*i+1), nil)
			}
		}
		out, err := io.ReadAll(g)
		if len(out) > len(in) {
			t.Fatalf("passed %d bytes of %d", len(out), len(in))
		}
		// Again, with pings enough: the same frames pass, whole.
		again := newGuestFrames(rwc{bytes.NewReader(out)})
		again.pings = pingBudget{tokens: 1 << 30, last: time.Now()}
		out2, err2 := io.ReadAll(again)
		if err2 != nil && err == nil {
			t.Fatalf("what passed fails the second time: %v", err2)
		}
		if err == nil && !bytes.Equal(out, out2) {
			t.Fatalf("what passed does not pass again unchanged: %d bytes, then %d", len(out), len(out2))
		}
	})
}
