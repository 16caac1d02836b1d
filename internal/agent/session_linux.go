package agent

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

// serveSession is the end of a VM or gVisor agent's start: it tells the
// host it is ready (VMOK) on conn, the one channel to the host, serves the
// host's ipc connections over a yamux session on it until the host ends
// the session, and shuts the agent down. kind names the agent in the
// handshake ("vm agent"), with the kernel's release. It returns why
// serving ended, or why the session could not start.
func (a *agent) serveSession(conn *os.File, kind string) error {
	if _, err := conn.WriteString(VMOK + "\n"); err != nil {
		a.shutdown()
		return err
	}
	sess, err := NewVMMuxServer(conn)
	if err != nil {
		a.shutdown()
		return err
	}
	srv := ipc.NewServerListener(sess, a.mux)
	var uts unix.Utsname
	unix.Uname(&uts)
	srv.SetInfo(kind + ", kernel " + unix.ByteSliceToString(uts.Release[:]))
	srv.SetLogger(a.log)
	err = srv.ServeOne()
	a.shutdown()
	sess.Close()
	return err
}
