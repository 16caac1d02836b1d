package sandbox

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"
)

// TestForwardBounded: code in the sandbox that connects to a Forward
// listener and hangs up at once, over and over, while the host service
// keeps what it was sent (here it never accepts), holds at most
// maxForwardConns forwarded connections on the host at once (each an
// accepted socket, a dialed one, a pipe and two goroutines), whatever
// its own limits; the rest wait in the sandbox's accept queue. The
// sandbox's end closes every one of them, with no Close of the forward.
func TestForwardBounded(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode.name, func(t *testing.T) {
			// Each process may open 256 files: the agent's limit too, which
			// on the streamed route holds two for each forwarded connection.
			inst := hostInstance(t, append(mode.opts, WithOpenFiles(256))...)
			host, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer host.Close()
			ln, err := inst.Listen("tcp", "127.0.0.1:9000")
			if err != nil {
				t.Fatal(err)
			}
			fwd, err := inst.Forward(ln, "tcp", host.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer fwd.Close()
			goroutines, fds := runtime.NumGoroutine(), openFDs(t)
			const n = 400
			run(t, inst, fmt.Sprintf(`exec bash -c 'for i in $(seq %d); do exec 3<>/dev/tcp/127.0.0.1/9000 || exit 1; exec 3>&-; done'`, n))
			// Wait until the forwarder has taken what it will take: as
			// many connections as it holds at most, or every one.
			want := min(n, maxForwardConns)
			var grewG, grewFD int
			for range 100 {
				grewG, grewFD = runtime.NumGoroutine()-goroutines, openFDs(t)-fds
				if grewFD >= 2*want || grewG >= 2*want {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond) // and a moment for more, were there no bound
			grewG, grewFD = runtime.NumGoroutine()-goroutines, openFDs(t)-fds
			t.Logf("%d connections made and closed by the sandbox: %d more goroutines, %d more descriptors on the host", n, grewG, grewFD)
			// Four descriptors a connection held (its two sockets and a
			// splice's pipe), and room for the net package's pooled
			// splice pipes, which other tests leave and this one may add
			// to; without a bound it was four for each of the 400.
			if grewFD > 4*maxForwardConns+128 || grewG > 4*maxForwardConns+32 {
				t.Errorf("the host holds %d more descriptors and %d more goroutines: unbounded by the sandbox's forwards", grewFD, grewG)
			}
			inst.Close()
			for range 200 {
				runtime.GC() // the net package's splice pipes wait in a sync.Pool, closed as it is collected
				grewG, grewFD = runtime.NumGoroutine()-goroutines, openFDs(t)-fds
				if grewG <= 2 && grewFD <= 0 {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("after the sandbox's Close: %d more goroutines, %d more descriptors", grewG, grewFD)
			if grewG > 2 || grewFD > 0 {
				t.Errorf("after the sandbox's Close: %d more goroutines, %d more descriptors than before its connections", grewG, grewFD)
			}
		})
	}
}
