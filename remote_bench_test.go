package sandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/ccsandbox/sandbox/internal/helper"
)

// BenchmarkRemote measures a sandbox on a network helper (cc-helper serve
// in this process, over TCP with mutual TLS on loopback) beside its
// floors, in the same run:
//
//   - CommandRoundTrip: sdk, a command through the network helper; floor,
//     the same command in a sandbox of the same image through the
//     Unix-socket helper (CC_USE_HELPER=1). Target: at most 2x.
//   - WriteFile100MB: sdk, 100 MB WriteFile of a new file through the
//     network helper (the last round's file is removed outside the
//     timer); floor, 100 MB copied over a raw TLS 1.3 connection on
//     loopback and acknowledged. Target: at least 0.8x the floor's
//     throughput. rewrite, for reference: WriteFile of the same file
//     over and over, truncating it, as a program that rewrites one file
//     does; on ext4, a file truncated to nothing is flushed to disk as it
//     closes (auto_da_alloc), and the next truncation waits for that
//     write to finish, so this measures the disk as much as the sdk.
//     tlsfile, for reference: the same raw TLS copy written into a new
//     file on the helper's store's file system: the sdk also pays the
//     file write, which the floor does not. filewrite, for reference:
//     that file write alone, 100 MB in 1 MiB writes as the helper makes
//     them, with no network at all.
//     putlayer, for reference: a layer of one 100 MB file sent by content
//     (MsgRemotePutLayer: unpacked as it arrives, checked, and committed
//     to the helper's store, flushed to disk), a new one each round, to a
//     helper with a store of its own.
//   - ReadFile100MB: sdk, 100 MB ReadFile through the network helper;
//     floor, 100 MB copied the other way over a raw TLS connection.
func BenchmarkRemote(b *testing.B) {
	ctx := context.Background()
	ref := testRegistry(b, "127.0.0.1:0")
	p := newTestPKI(b)
	s := startNetHelper(b, p)
	r, err := DialRemote(ctx, s.Addr().String(), p.client("bench"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	img, err := r.Pull(ctx, ref)
	if err != nil {
		b.Fatal(err)
	}
	remoteInst := func(b *testing.B) *Instance {
		inst, err := r.New(ctx, img)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { inst.Close() })
		return inst
	}
	b.Run("CommandRoundTrip", func(b *testing.B) {
		run := func(b *testing.B, inst *Instance) {
			for b.Loop() {
				if err := inst.Command("true").Run(); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.Run("sdk", func(b *testing.B) { run(b, remoteInst(b)) })
		b.Run("floor", func(b *testing.B) {
			withHelper(b, false)
			inst := newInstance(b, busyboxImage(b))
			if _, ok := inst.runner.(*helper.Remote); !ok {
				b.Fatal("the floor's sandbox is not in a Unix-socket helper")
			}
			run(b, inst)
		})
	})
	big := make([]byte, bulkSize)
	rand.Read(big)
	b.Run("WriteFile100MB", func(b *testing.B) {
		writeFile := func(b *testing.B, fresh bool) {
			inst := remoteInst(b)
			b.SetBytes(bulkSize)
			for i := 0; i < b.N; i++ {
				if fresh {
					b.StopTimer()
					if err := inst.Remove("/tmp/big"); err != nil && !errors.Is(err, fs.ErrNotExist) {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				if err := inst.WriteFile("/tmp/big", big, 0o644); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.Run("sdk", func(b *testing.B) { writeFile(b, true) })
		b.Run("rewrite", func(b *testing.B) { writeFile(b, false) })
		// tlsCopy copies big over a raw TLS connection into what sink
		// opens, round after round; after each, outside the timer, it
		// calls between.
		tlsCopy := func(b *testing.B, sink func() (io.WriteCloser, error), between func()) {
			c := tlsPair(b, p, func(c net.Conn) error { return drain(c, sink) })
			b.SetBytes(bulkSize)
			ack := make([]byte, 1)
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(big); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, ack); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				between()
				b.StartTimer()
			}
		}
		b.Run("floor", func(b *testing.B) {
			tlsCopy(b, func() (io.WriteCloser, error) { return nopCloser{io.Discard}, nil }, func() {})
		})
		b.Run("tlsfile", func(b *testing.B) {
			name := filepath.Join(b.TempDir(), "big")
			tlsCopy(b, func() (io.WriteCloser, error) { return os.Create(name) }, func() { os.Remove(name) })
		})
		b.Run("putlayer", func(b *testing.B) {
			other := startNetHelper(b, p, "-store", b.TempDir())
			nc, err := helper.DialNet(ctx, other.Addr().String(), p.client("bench"))
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			b.SetBytes(bulkSize)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				big[0] = byte(i) // a new layer each round
				var layer bytes.Buffer
				tw := tar.NewWriter(&layer)
				tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: bulkSize})
				tw.Write(big)
				tw.Close()
				sum := sha256.Sum256(layer.Bytes())
				b.StartTimer()
				err := nc.PutLayer(ctx, "sha256:"+hex.EncodeToString(sum[:]), int64(layer.Len()), func(w io.Writer) error {
					_, err := w.Write(layer.Bytes())
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("filewrite", func(b *testing.B) {
			name := filepath.Join(b.TempDir(), "big")
			b.SetBytes(bulkSize)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				os.Remove(name)
				b.StartTimer()
				f, err := os.Create(name)
				if err != nil {
					b.Fatal(err)
				}
				for rest := big; len(rest) > 0; rest = rest[min(len(rest), 1<<20):] {
					if _, err := f.Write(rest[:min(len(rest), 1<<20)]); err != nil {
						b.Fatal(err)
					}
				}
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("ReadFile100MB", func(b *testing.B) {
		b.Run("sdk", func(b *testing.B) {
			inst := remoteInst(b)
			if err := inst.WriteFile("/tmp/big", big, 0o644); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(bulkSize)
			for b.Loop() {
				if got, err := inst.ReadFile("/tmp/big"); err != nil || len(got) != bulkSize {
					b.Fatalf("ReadFile: %d bytes, %v", len(got), err)
				}
			}
		})
		b.Run("floor", func(b *testing.B) {
			c := tlsPair(b, p, func(c net.Conn) error {
				if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
					return err
				}
				_, err := c.Write(big)
				return err
			})
			b.SetBytes(bulkSize)
			for b.Loop() {
				got := make([]byte, bulkSize) // as ReadFile allocates its result
				if _, err := c.Write([]byte{1}); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, got); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// nopCloser is a WriteCloser whose Close does nothing.
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// drain reads bulkSize bytes from c into a writer sink opens, closes it
// and answers one byte.
func drain(c net.Conn, sink func() (io.WriteCloser, error)) error {
	w, err := sink()
	if err != nil {
		return err
	}
	_, err = io.CopyN(w, c, bulkSize)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	_, err = c.Write([]byte{1})
	return err
}

// tlsPair returns the client end of a TLS 1.3 connection on loopback,
// mutually authenticated as the network helper's are, whose server calls
// round over and over until it fails.
func tlsPair(b *testing.B, p *testPKI, round func(c net.Conn) error) net.Conn {
	srvCert := p.ca.Issue("floor", []string{"helpers.test"}, nil)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{srvCert.TLS},
		ClientCAs: p.ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for round(c) == nil {
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), p.client("bench"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c.Close()
		ln.Close()
		<-done
	})
	return c
}
