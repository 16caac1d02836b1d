// Package hostilevm plays QEMU and a hostile guest for tests of the VM
// backend: a test binary whose init calls Main when the process carries
// EnvMode, run by the script CC_QEMU names. It speaks the real start
// exchange (agent.VMHello, the configuration, agent.VMOK) on the control
// descriptor QEMU would get, then serves the host with the real
// guest-side mux (agent.NewVMMuxServer) and an ipc server that
// misbehaves as the mode says:
//
//   - bigsnap: answers the n-th snapshot request with a layer tar of the
//     n-th size in MiB of EnvSnapMB (comma-separated), of random data,
//     whatever the VM's disk could hold.
//   - sparsesnap: answers snapshot requests with a tar of one old-GNU
//     sparse entry, 1 KiB on the wire, that stands for a file of
//     EnvSnapMB MiB.
//   - listenhang: answers Listen, and never answers the listener's Close.
//   - statname: answers Stat and Lstat with the name BadName, whatever
//     the path.
//   - truncsnap: answers snapshot requests with a tar of one file that
//     stops after it, without the end-of-archive marker, as an agent
//     that failed half way would.
//   - sparsewhiteout: as sparsesnap, the entry named as a whiteout
//     (.wh.big), whose data the host never reads.
//   - paxcut: answers snapshot requests with a tar of a file, then the
//     PAX header of a file of a long name and its records, and nothing
//     after: an agent that failed between that file's two headers.
//   - nethang: answers the network's configuration when it turns egress
//     on; when it turns it off, makes the file EnvMark names and never
//     answers.
package hostilevm

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/ccsandbox/sandbox/internal/agent"
	"github.com/ccsandbox/sandbox/internal/ipc"
	"github.com/ccsandbox/sandbox/internal/testutil/sparsetar"
)

// The environment of the hostile guest.
const (
	// EnvMode names the mode of a process that is to play the guest.
	EnvMode = "CC_TEST_HOSTILE_VM"
	// EnvSnapMB lists the sizes of bigsnap's tars.
	EnvSnapMB = "CC_TEST_HOSTILE_VM_SNAPMB"
	// EnvMark names the file nethang makes once a request it will never
	// answer has come.
	EnvMark = "CC_TEST_HOSTILE_VM_MARK"
)

// BadName is the name statname gives every file: a path out of any
// directory the host might join it to, and a NUL.
const BadName = "../../../etc/cron.d/evil\x00"

// Main plays QEMU, with the guest of the mode EnvMode names, on QEMU's
// arguments os.Args[1:], and returns the exit code.
func Main() int {
	mode, args := os.Getenv(EnvMode), os.Args[1:]
	if len(args) == 2 && args[0] == "-machine" && args[1] == "help" {
		fmt.Println("Supported machines are:\nmicrovm   microvm (i386)\nq35   Standard PC")
		return 0
	}
	port := controlPort(args)
	port.WriteString(agent.VMHello + "\n")
	if _, err := agent.ReadVMConfig(port); err != nil {
		fatal(err.Error())
	}
	port.WriteString(agent.VMOK + "\n")
	mux := ipc.NewMux()
	ipc.Route(mux, ipc.MsgInstanceIsRunning, func(*ipc.Request, *ipc.Empty) (ipc.BoolAns, error) {
		return ipc.BoolAns{Value: true}, nil
	})
	switch mode {
	case "bigsnap":
		bigSnap(mux)
	case "sparsesnap":
		ipc.Route(mux, ipc.MsgFsSnapshot, func(req *ipc.Request, _ *ipc.SnapshotOptions) (ipc.Empty, error) {
			mb, _ := strconv.Atoi(os.Getenv(EnvSnapMB))
			req.HijackWith(func(c net.Conn) { go writeSparseTar(c, "big", int64(mb)<<20) })
			return ipc.Empty{}, nil
		})
	case "sparsewhiteout":
		ipc.Route(mux, ipc.MsgFsSnapshot, func(req *ipc.Request, _ *ipc.SnapshotOptions) (ipc.Empty, error) {
			mb, _ := strconv.Atoi(os.Getenv(EnvSnapMB))
			req.HijackWith(func(c net.Conn) { go writeSparseTar(c, ".wh.big", int64(mb)<<20) })
			return ipc.Empty{}, nil
		})
	case "paxcut":
		ipc.Route(mux, ipc.MsgFsSnapshot, func(req *ipc.Request, _ *ipc.SnapshotOptions) (ipc.Empty, error) {
			req.HijackWith(func(c net.Conn) { go writePAXCutTar(c) })
			return ipc.Empty{}, nil
		})
	case "listenhang":
		ipc.Route(mux, ipc.MsgNetListen, func(*ipc.Request, *ipc.ListenReq) (ipc.ListenAns, error) {
			return ipc.ListenAns{Handle: 7, Addr: "127.0.0.1:80"}, nil
		})
		ipc.Route(mux, ipc.MsgListenerClose, func(req *ipc.Request, _ *ipc.HandleReq) (ipc.Empty, error) {
			<-req.Context().Done() // never answers
			return ipc.Empty{}, nil
		})
	case "statname":
		stat := func(*ipc.Request, *ipc.PathReq) (ipc.StatAns, error) {
			return ipc.StatAns{Info: ipc.FileInfo{Name: BadName, Size: 1, Mode: 0o644}}, nil
		}
		ipc.Route(mux, ipc.MsgFsStat, stat)
		ipc.Route(mux, ipc.MsgFsLstat, stat)
	case "truncsnap":
		ipc.Route(mux, ipc.MsgFsSnapshot, func(req *ipc.Request, _ *ipc.SnapshotOptions) (ipc.Empty, error) {
			req.HijackWith(func(c net.Conn) { go writeTruncatedTar(c) })
			return ipc.Empty{}, nil
		})
	case "nethang":
		ipc.Route(mux, ipc.MsgInstanceSetNetwork, func(req *ipc.Request, m *ipc.NetworkReq) (ipc.Empty, error) {
			if m.Enabled {
				return ipc.Empty{}, nil
			}
			if err := os.WriteFile(os.Getenv(EnvMark), nil, 0o644); err != nil {
				fatal(err.Error())
			}
			<-req.Context().Done() // never answers
			return ipc.Empty{}, nil
		})
	default:
		fatal("unknown mode " + mode)
	}
	sess, err := agent.NewVMMuxServer(port)
	if err != nil {
		fatal(err.Error())
	}
	srv := ipc.NewServerListener(sess, mux)
	srv.SetInfo("hostile vm agent")
	srv.ServeOne()
	return 0
}

// controlPort is the descriptor of QEMU's -chardev socket,id=ctl,fd=N.
func controlPort(args []string) *os.File {
	const prefix = "socket,id=ctl,fd="
	for i, a := range args {
		if a == "-chardev" && i+1 < len(args) && strings.HasPrefix(args[i+1], prefix) {
			if fd, err := strconv.Atoi(strings.TrimPrefix(args[i+1], prefix)); err == nil {
				return os.NewFile(uintptr(fd), "ctl")
			}
		}
	}
	fatal("no -chardev socket,id=ctl,fd=N")
	return nil
}

// bigSnap answers snapshot requests with tars of EnvSnapMB's sizes.
func bigSnap(mux *ipc.Mux) {
	sizes := strings.Split(os.Getenv(EnvSnapMB), ",")
	var n atomic.Int32
	ipc.Route(mux, ipc.MsgFsSnapshot, func(req *ipc.Request, _ *ipc.SnapshotOptions) (ipc.Empty, error) {
		mb, _ := strconv.Atoi(sizes[min(int(n.Add(1))-1, len(sizes)-1)])
		req.HijackWith(func(c net.Conn) { go writeTar(c, mb) })
		return ipc.Empty{}, nil
	})
}

// writeTar writes a tar of one file of mb MiB of random data to c, and
// closes it.
func writeTar(c net.Conn, mb int) {
	defer c.Close()
	tw := tar.NewWriter(c)
	if err := tw.WriteHeader(&tar.Header{Name: "big", Mode: 0o644, Size: int64(mb) << 20, Typeflag: tar.TypeReg}); err != nil {
		return
	}
	chunk := make([]byte, 1<<20)
	for range mb {
		rand.Read(chunk)
		if _, err := tw.Write(chunk); err != nil {
			return
		}
	}
	tw.Close()
}

// writeSparseTar writes to c, and closes it, a tar of one old-GNU sparse
// entry named name (sparsetar.Tar) for a file of size bytes in all.
func writeSparseTar(c net.Conn, name string, size int64) {
	defer c.Close()
	c.Write(sparsetar.Tar(name, size))
}

// writeTruncatedTar writes to c, and closes it, a tar entry for a file
// "a", with its data, and nothing after: no end-of-archive marker.
func writeTruncatedTar(c net.Conn) {
	defer c.Close()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "a", Mode: 0o644, Size: 512, Typeflag: tar.TypeReg})
	tw.Write(bytes.Repeat([]byte{'a'}, 512))
	tw.Flush()
	c.Write(b.Bytes())
}

func fatal(msg string) {
	fmt.Fprintln(os.Stderr, "hostilevm:", msg)
	os.Exit(1)
}

// writePAXCutTar writes to c a tar of a file "a", then the PAX header of a
// file with a 600-byte name and its records, and stops there: what an
// agent that failed between the two headers of that file sends.
func writePAXCutTar(c net.Conn) {
	defer c.Close()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "a", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("a"))
	tw.WriteHeader(&tar.Header{Name: strings.Repeat("d", 200) + "/" + strings.Repeat("f", 400), Mode: 0o644, Typeflag: tar.TypeReg})
	tw.Flush()
	c.Write(b.Bytes()[:b.Len()-512]) // all but the entry's own header
}
