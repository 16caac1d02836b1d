// Command http serves HTTP to code in a sandbox and calls a server running
// inside it, with plain net/http on both sides: the listener and the
// connections are real sockets of the sandbox's own network, which has no
// way out.
//
//	go run ./examples/http
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"time"

	"github.com/ccsandbox/sandbox"
)

func main() {
	ctx := context.Background()
	inst, err := sandbox.New(ctx, sandbox.HostImage())
	if err != nil {
		log.Fatal(err)
	}
	defer inst.Close()

	// 1. A tool server for sandboxed code: listen inside, serve from here.
	ln, err := inst.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "the host answers %s\n", r.URL.Path)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	out, err := inst.Command("busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:8080/tools/search").CombinedOutput()
	if err != nil {
		log.Fatalf("%v: %s", err, out)
	}
	fmt.Printf("inside, wget got: %s", out)

	// 2. A server inside, called from here through the sandbox's network.
	inst.MkdirAll("/srv", 0o755)
	inst.WriteFile("/srv/index.html", []byte("served from inside the sandbox\n"), 0o644)
	httpd := inst.Command("busybox", "httpd", "-f", "-p", "127.0.0.1:9000", "-h", "/srv")
	if err := httpd.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() { httpd.Process.Kill(); httpd.Wait() }()

	client := &http.Client{Transport: &http.Transport{DialContext: inst.DialContext}}
	defer client.CloseIdleConnections()
	var body []byte
	for start := time.Now(); ; {
		resp, err := client.Get("http://127.0.0.1:9000/index.html")
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				break
			}
		}
		if time.Since(start) > 10*time.Second {
			log.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // httpd is starting
	}
	fmt.Printf("outside, http.Client got: %s", body)
}
