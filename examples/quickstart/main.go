// Command quickstart shows the SDK's wire protocol at work: it serves a
// handler on a Unix socket, connects a client, performs the versioned
// handshake and makes calls, with errors that keep their identity across
// the connection.
//
// This is the README's first command; it grows into starting a real sandbox
// as the sandbox engine lands.
package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log"

	"github.com/ccsandbox/sandbox/internal/ipc"
)

func main() {
	mux := ipc.NewMux()
	mux.Handle(ipc.MsgFsStat, func(dec *ipc.Decoder) ([]byte, error) {
		name, err := dec.String()
		if err != nil {
			return nil, err
		}
		if name != "/etc/hostname" {
			return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
		}
		return ipc.NewResponseBuilder().Success().FileInfo(ipc.FileInfo{Name: "hostname", Size: 8, Mode: 0o644}).Build(), nil
	})
	srv, err := ipc.Listen(ipc.SocketPath(), mux)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	go srv.Serve()

	c, err := ipc.ConnectTo(srv.SocketPath())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Printf("connected to %s (%s)\n", srv.SocketPath(), c.Info())

	resp, err := c.CallWithEncoder(ipc.MsgFsStat, func(e *ipc.Encoder) { e.String("/etc/hostname") })
	if err != nil {
		log.Fatal(err)
	}
	dec := ipc.NewDecoder(resp[1:])
	fi, err := ipc.DecodeFileInfo(dec)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("stat /etc/hostname: %s %v %d bytes\n", fi.Name, fi.Mode, fi.Size)

	_, err = c.CallWithEncoder(ipc.MsgFsStat, func(e *ipc.Encoder) { e.String("/missing") })
	fmt.Printf("stat /missing: %v (errors.Is fs.ErrNotExist: %v)\n", err, errors.Is(err, fs.ErrNotExist))
}
